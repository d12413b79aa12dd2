package actors

import (
	"errors"
	"slices"
	"testing"
)

func TestRoleGrants(t *testing.T) {
	for role, want := range map[Role]Grants{
		RolePublisher:  {Publish: true, Subscribe: true, PublishData: true},
		RoleModerator:  {Publish: true, Subscribe: true, PublishData: true},
		RoleSubscriber: {Subscribe: true, PublishData: true},
	} {
		if got := RoleGrants(role); !got.equal(want) {
			t.Errorf("%s: %+v, want %+v", role, got, want)
		}
	}
	// A hidden token from any role publishes nothing, unless it says so
	// (which Validate then refuses).
	g := GrantsFor(RoleModerator, GrantsPatch{Hidden: ptr(true)})
	if g.Publish || g.PublishData || !g.Subscribe || !g.Hidden || g.Validate() != nil {
		t.Fatalf("hidden moderator: %+v (%v)", g, g.Validate())
	}
	if err := GrantsFor(RolePublisher, GrantsPatch{Hidden: ptr(true), Publish: ptr(true)}).Validate(); fieldOf(err) != "grants.hidden" {
		t.Fatalf("hidden publisher: %v", err)
	}
}

func TestGrantsSources(t *testing.T) {
	mic := []TrackSource{SourceMicrophone}
	g := RoleGrants(RolePublisher).Apply(GrantsPatch{PublishSources: &mic})
	if !g.CanPublish(SourceMicrophone) || g.CanPublish(SourceCamera) || !slices.Equal(g.Sources(), mic) {
		t.Fatalf("microphone only: %+v", g)
	}
	if r := publishRefusal(g, "video", SourceCamera); r == "" {
		t.Fatal("a camera allowed to a microphone-only publisher")
	}
	if r := publishRefusal(g, "video", SourceMicrophone); r == "" {
		t.Fatal("a video track taken as a microphone")
	}
	if r := publishRefusal(g, "audio", SourceMicrophone); r != "" {
		t.Fatalf("the microphone refused: %s", r)
	}
	if got := (Grants{PublishSources: mic}).Sources(); len(got) != 0 {
		t.Fatalf("sources without publish: %v", got)
	}
	if got := RoleGrants(RolePublisher).Sources(); !slices.Equal(got, TrackSources()) {
		t.Fatalf("unrestricted sources: %v", got)
	}
	for _, bad := range [][]TrackSource{{}, {"hologram"}, {SourceCamera, SourceCamera}} {
		if err := (Grants{Publish: true, PublishSources: bad}).Validate(); fieldOf(err) != "grants.publish_sources" {
			t.Errorf("sources %v: %v", bad, err)
		}
	}
	var refused error = &PublishRefusedError{Mid: "0", Kind: "video", Source: SourceCamera, Reason: "no"}
	if !errors.Is(refused, ErrForbidden) {
		t.Fatal("a refused track is not ErrForbidden")
	}
}

func TestValidateMetadata(t *testing.T) {
	if err := ValidateMetadata("metadata", string(make([]byte, MaxMetadata))); err != nil {
		t.Fatal(err)
	}
	if err := ValidateMetadata("metadata", string(make([]byte, MaxMetadata+1))); fieldOf(err) != "metadata" {
		t.Fatalf("over the limit: %v", err)
	}
	if err := ValidateMetadata("metadata", "\xff"); fieldOf(err) != "metadata" {
		t.Fatalf("not UTF-8: %v", err)
	}
}

func fieldOf(err error) string {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Field
	}
	return ""
}

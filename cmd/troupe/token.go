package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-media/troupe/httpapi/auth"
)

func newTokenCmd() *cobra.Command {
	var (
		admin                      bool
		room, identity, name, role string
		ttl                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token (--admin | --room ID --identity NAME --role ROLE)",
		Short: "Mint an admin or join token with the data dir's API key",
		Long: `Mint a token signed with the API key in <data-dir>/keys.json (or the
one given with --api-key and --api-secret). The token is printed on the last
line of the output, so TOKEN=$(troupe token --admin | tail -n1) works.`,
		Args: cobra.NoArgs,
	}
	cf := newConfigFlags(cmd.Flags(), "data-dir", "api-key", "api-secret", "token-max-lifetime")
	f := cmd.Flags()
	f.BoolVar(&admin, "admin", false, "mint an admin token for the REST API")
	f.StringVar(&room, "room", "", "room id of a join token")
	f.StringVar(&identity, "identity", "", "participant identity of a join token")
	f.StringVar(&name, "name", "", "participant display name of a join token (default: the identity)")
	f.StringVar(&role, "role", "", "publisher, subscriber or moderator")
	f.DurationVar(&ttl, "ttl", defaultTokenTTL, "how long the token is valid (a shorter --token-max-lifetime cuts the default)")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := cf.load(os.LookupEnv)
		if err != nil {
			return err
		}
		if err := cfg.validateKey(); err != nil {
			return err
		}
		if err := cfg.validateTokenMaxLifetime(); err != nil {
			return err
		}
		if !cmd.Flags().Changed("ttl") {
			ttl = cfg.tokenTTL(ttl)
		}
		req := tokenRequest{admin: admin, room: room, identity: identity, name: name, role: role, ttl: ttl,
			maxTTL: cfg.TokenMaxLifetime}
		return mintToken(cmd.OutOrStdout(), cfg, req, time.Now())
	}
	return cmd
}

// defaultTokenTTL is how long a token from `troupe token` is valid
// unless --ttl says otherwise.
const defaultTokenTTL = 24 * time.Hour

// tokenTTL is a default lifetime cut to --token-max-lifetime: a token
// Troupe mints by default is one its servers accept. An explicit --ttl
// is not cut but refused when longer.
func (c Config) tokenTTL(ttl time.Duration) time.Duration {
	return auth.CutLifetime(ttl, c.TokenMaxLifetime)
}

// shortDuration writes d as people do: 24h, 30m, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

type tokenRequest struct {
	admin                      bool
	room, identity, name, role string
	ttl                        time.Duration
	// maxTTL is the longest ttl the servers accept (--token-max-lifetime);
	// 0 means auth.DefaultMaxLifetime.
	maxTTL time.Duration
}

// claims checks the request and returns the claims to sign. Every error
// is a usage error: the request is made of flags only.
func (r tokenRequest) claims(now time.Time) (auth.Claims, error) {
	if r.ttl <= 0 {
		return auth.Claims{}, usageErrorf("--ttl %v: must be positive", r.ttl)
	}
	maxTTL := r.maxTTL
	if maxTTL <= 0 {
		maxTTL = auth.DefaultMaxLifetime
	}
	if r.ttl > maxTTL {
		return auth.Claims{}, usageErrorf("--ttl %v: more than --token-max-lifetime %v, which the server refuses", r.ttl, maxTTL)
	}
	if r.admin {
		if r.room != "" {
			return auth.Claims{}, usageErrorf("--admin and --room: an admin token has no room; give one or the other")
		}
		if r.identity != "" || r.role != "" || r.name != "" {
			return auth.Claims{}, usageErrorf("--admin takes no --identity, --name or --role")
		}
		return auth.AdminClaims(now, r.ttl), nil
	}
	if r.room == "" {
		return auth.Claims{}, usageErrorf("say which token: --admin, or --room ID --identity NAME --role ROLE")
	}
	if r.identity == "" {
		return auth.Claims{}, usageErrorf("a join token needs --identity")
	}
	role, err := auth.ParseRole(r.role)
	if err != nil {
		return auth.Claims{}, usageErrorf("--role: %w", err)
	}
	name := r.name
	if name == "" {
		name = r.identity
	}
	return auth.JoinClaims(now, r.ttl, r.room, r.identity, name, role), nil
}

// mintToken writes a line describing the token, then the token itself.
func mintToken(w io.Writer, cfg Config, r tokenRequest, now time.Time) error {
	claims, err := r.claims(now)
	if err != nil {
		return err
	}
	key, ok := cfg.configuredKey()
	if !ok {
		key, err = loadKey(cfg.DataDir)
		if errors.Is(err, ErrNoKey) {
			// err already says "no API key" and which file is missing.
			return fmt.Errorf("%w; run `troupe serve --data-dir %s` once to create one, or pass --api-key and --api-secret",
				err, cfg.DataDir)
		}
		if err != nil {
			return err
		}
	}
	token, err := auth.Mint(key, claims)
	if err != nil {
		return err
	}
	expires := claims.ExpiresAt.UTC().Format(time.RFC3339)
	if r.admin {
		fmt.Fprintf(w, "# admin token, key %s, expires %s\n", key.ID, expires)
	} else {
		fmt.Fprintf(w, "# join token for %q in room %q as %s, key %s, expires %s\n",
			claims.Subject, claims.Room, claims.Role, key.ID, expires)
	}
	_, err = fmt.Fprintln(w, token)
	return err
}

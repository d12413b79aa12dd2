package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildTroupe builds the troupe executable into dir, from the module this
// package belongs to, and returns its path.
func BuildTroupe(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	exe := filepath.Join(dir, "troupe")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", exe, "./cmd/troupe")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cluster: go build ./cmd/troupe: %w\n%s", err, out)
	}
	return exe, nil
}

// moduleRoot is the directory of Troupe's go.mod, as the go command sees
// it from here (tests run in their package's directory).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("cluster: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == "/dev/null" {
		return "", fmt.Errorf("cluster: not inside Troupe's module")
	}
	return filepath.Dir(mod), nil
}

// Package deploy holds no code: its tests build groupgate's container image (scripts/image), run it the way
// deploy/kubernetes runs it, and check that it honours a memory limit (SPEC §15). They need podman (or docker
// with a running daemon); without either they skip, except in CI (env CI set), where they fail.
package deploy

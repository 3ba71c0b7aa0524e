"""The repository on disk and what runs in it: workspaces and Honk's own git, the sandbox, setup's egress proxy,
verification."""

"""Front ends for the users of the seed systems, thin over the client: seed 004's org-file inbox and its
``cross-agent-*`` commands."""

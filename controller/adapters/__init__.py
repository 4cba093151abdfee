"""I/O at the edges: git (clone, fetch, commits, push, notes), serving targets over
gRPC, metrics providers (scrape, PromQL), credential redaction for what leaves."""

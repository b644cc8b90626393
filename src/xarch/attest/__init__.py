"""Supply-chain attestations: cosign-compatible keys (``keys``), simple-signing payloads
(``payload``) and signature storage/verification (``cosign``). Submodules are imported
explicitly so that importing one does not pull in the others' crypto dependencies."""

"""Tests of xarch.oci; ``oci.schema_check`` is the shared OCI-schema assertion helper."""

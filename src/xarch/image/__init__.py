"""Image views over any source, and the one platform selector (see ``select``)."""

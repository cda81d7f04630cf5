"""List sync: Bloom-filter building, delta coding and the reference client."""

"""Loss library shared by methods."""

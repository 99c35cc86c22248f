"""Library-export parsing: bytes in, records and unique normalised authors out."""

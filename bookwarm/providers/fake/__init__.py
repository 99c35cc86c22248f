"""A local stand-in for OpenLibrary, Google Books and ISBNdb, for demos, tests and benchmarks."""

"""Book providers (OpenLibrary, Google Books, ISBNdb): async clients, limits, retries, merge."""

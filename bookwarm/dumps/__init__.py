"""Bulk warming from OpenLibrary's monthly data dumps: the bibliographies the API path would
write, read from the authors, works and editions files instead of 3 calls a second."""

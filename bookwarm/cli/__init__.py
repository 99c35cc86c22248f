"""The `bookwarm` command line."""

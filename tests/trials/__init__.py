"""Small trial functions and scripts that the end-to-end tests run on real workers."""

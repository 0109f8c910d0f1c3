"""Export of a user's records as a zip, and import of that zip into any account."""

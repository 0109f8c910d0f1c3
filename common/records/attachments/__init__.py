"""Attachments of records: streamed uploads, sniffed types, thumbnails, deduplicated files."""

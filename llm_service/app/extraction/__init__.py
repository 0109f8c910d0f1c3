"""Extraction: what is inside a record's attachments (photos and screenshots read by OCR or a
vision model, voice memos transcribed, PDFs and text files read) and behind a link record's
URL, done as durable jobs by llm_service's extraction workers."""

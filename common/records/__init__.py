"""The record domain: what people capture, shared by mobile_service and web_service."""

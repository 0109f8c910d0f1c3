"""llm_service: Every LLM application: chat, record analysis, memories, digests, provider config. Internal."""

"""Dependency aliases for mobile_service's routes."""

from common.deps import RedisDep, ServicesDep, SessionDep, SettingsDep

__all__ = ["RedisDep", "ServicesDep", "SessionDep", "SettingsDep"]

"""Accounts' queries that fastcrud answers as it is (is a username taken, are there any
users yet). Accounts belong to no owner, so no owner policy applies here; what an account
may see of itself is `users/routes.py`'s `me`, what administrators may is `admin/`."""

from __future__ import annotations

from fastcrud import FastCRUD

from common.users.models import User

user_crud: FastCRUD = FastCRUD(User)

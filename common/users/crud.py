"""One typed FastCRUD per account model."""

from fastcrud import FastCRUD

from common.users.models import ApiToken, User

user_crud: FastCRUD = FastCRUD(User)
api_token_crud: FastCRUD = FastCRUD(ApiToken)

"""Path and query parameters the routes share: ids as the edge takes them, and list pages."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from usage_ledger.domain.pages import MAX_PAGE
from usage_ledger.http.schemas import IDENTIFIER

PathId = Annotated[str, Path(pattern=IDENTIFIER)]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
PageCursor = Annotated[str | None, Query(max_length=1024)]

"""Survey photos as the API serves them: ``GET /collections/{layer}/photos/{sha256}.jpg``.

Only clean copies exist to be served (the survey import stores photos re-encoded without metadata,
named by their SHA-256); a photo is readable exactly when its layer is, and answers 404 otherwise,
like a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse

from civictwin.api.context import get_twin, visible_layer
from civictwin.api.problems import not_found
from civictwin.fieldwork.photos import PHOTO_NAME, photo_folder

router = APIRouter(tags=["Photos"])


@router.get(
    "/collections/{collection_id}/photos/{name}",
    summary="A survey photo of a collection (metadata stripped)",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def photo(
    request: Request,
    collection_id: Annotated[str, Path(description="A layer of the twin", max_length=63)],
    name: Annotated[str, Path(description="The photo's file name, as the layer's photo column gives it")],
) -> FileResponse:
    """One photo of a survey layer the caller may read (its name is its content hash: it never changes)."""
    visible_layer(request, collection_id)
    file = photo_folder(get_twin(request).store_path, collection_id) / name
    if not PHOTO_NAME.fullmatch(name) or not file.is_file():
        raise not_found(f"no photo named '{name[:80]}' in collection '{collection_id}'")
    return FileResponse(file, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

"""ProvincialNode servicer: thin translation between protobuf and the issuer / status store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from healthcode.v1 import common_pb2, node_pb2, node_pb2_grpc
from nodes.provincial.issuance import IssuedCode, Issuer
from nodes.provincial.status_store import CodeRecord, SqliteStatusStore
from trust.errors import InvalidRequest
from trust.model import Colour


def colour_from_proto(value: int, *, default: Colour | None = None) -> Colour:
    if value == common_pb2.COLOUR_UNSPECIFIED and default is not None:
        return default
    try:
        return Colour(value)
    except ValueError as e:
        raise InvalidRequest(f"unknown colour {value}") from e


def code_id_from_proto(value: bytes) -> bytes:
    if len(value) != 16:
        raise InvalidRequest("code_id must be 16 bytes")
    return value


MAX_BATCH = 1000


def status_to_proto(record: CodeRecord) -> common_pb2.CodeStatus:
    return common_pb2.CodeStatus(
        code_id=record.code_id,
        found=True,
        colour=int(record.colour),
        status_version=record.status_version,
        updated_at=int(record.updated_at),
    )


def issued_to_proto(issued: IssuedCode) -> node_pb2.IssueCodeResponse:
    return node_pb2.IssueCodeResponse(
        code_id=issued.record.code_id,
        token=issued.token,
        expires_at=issued.expires_at,
        colour=int(issued.record.colour),
        status_version=issued.record.status_version,
    )


class ProvincialNodeServicer(node_pb2_grpc.ProvincialNodeServicer):
    """The province's API for its operators and for the national gateway."""

    def __init__(
        self,
        *,
        issuer: Issuer,
        store: SqliteStatusStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._store = store
        self._clock = clock

    async def IssueCode(self, request: Any, context: Any) -> node_pb2.IssueCodeResponse:
        colour = colour_from_proto(request.colour, default=Colour.GREEN)
        issued = self._issuer.issue(
            id_number=request.id_number, full_name=request.full_name, colour=colour
        )
        return issued_to_proto(issued)

    async def SetStatus(self, request: Any, context: Any) -> node_pb2.SetStatusResponse:
        record = self._store.set_colour(
            code_id=code_id_from_proto(request.code_id),
            colour=colour_from_proto(request.colour),
            reason=request.reason[:200] or "unspecified",
            request_id=request.request_id or str(uuid.uuid4()),
            now=self._clock(),
        )
        return node_pb2.SetStatusResponse(status=status_to_proto(record))

    async def GetStatus(self, request: Any, context: Any) -> common_pb2.CodeStatus:
        code_id = code_id_from_proto(request.code_id)
        record = self._store.get(code_id)
        if record is None:
            return common_pb2.CodeStatus(code_id=code_id, found=False)
        return status_to_proto(record)

    async def GetStatusBatch(self, request: Any, context: Any) -> node_pb2.GetStatusBatchResponse:
        ids = list(request.code_ids)
        if not 0 < len(ids) <= MAX_BATCH:
            raise InvalidRequest(f"a batch holds 1 to {MAX_BATCH} code ids, not {len(ids)}")
        found = self._store.get_many([code_id_from_proto(i) for i in ids])
        return node_pb2.GetStatusBatchResponse(
            statuses=[
                status_to_proto(found[i]) if i in found else common_pb2.CodeStatus(code_id=i)
                for i in ids
            ]
        )

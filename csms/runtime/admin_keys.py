"""``csms keys create-admin``: an admin key issued straight into the database, for a first start or a lost key.

It works with the server stopped or running: a running server reads keys it does not know from the database
(csms.service.accounts), so the new key works at once.
"""

from __future__ import annotations

from csms.config import Settings
from csms.runtime.app import utc_now
from csms.service.accounts import AccountService, NewKey
from csms.storage.engine import create_engine, create_writer_engine, migrate
from csms.storage.sql import SqlStorage
from csms.storage.writer import GroupCommitWriter

__all__ = ["issue_admin_key"]


async def issue_admin_key(settings: Settings, name: str) -> NewKey:
    database = settings.database
    engine = create_engine(database.url, database.synchronous)
    writer = GroupCommitWriter(create_writer_engine(database.url, database.synchronous), database.max_batch)
    try:
        await migrate(engine)
        writer.start()
        accounts = AccountService(SqlStorage(engine, writer), utc_now)
        await accounts.load()
        return await accounts.issue_admin_key(name)
    finally:
        await writer.close()
        await engine.dispose()

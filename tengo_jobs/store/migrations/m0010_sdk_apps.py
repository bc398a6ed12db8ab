"""Inngest SDK apps: ``tj_apps``, one row per app synced by its SDK (``POST /fn/register``).

``app_id`` (primary key: the SDK's ``appName``), the serve ``url`` the worker calls, the
``sdk`` (``js:v3.32.7``) and ``framework`` (``express``) it reported, ``functions`` (the
function configurations it sent, JSON text: every process rebuilds its registry entries from
them at boot and when a run names a function it does not know), ``unsupported`` (what the
sync refused or ignored, JSON list of messages) and ``synced_at`` (epoch ms).
"""

from __future__ import annotations

STATEMENTS = {
    "sqlite": ['CREATE TABLE "tj_apps" ("app_id" VARCHAR(128) NOT NULL PRIMARY KEY, '
               '"url" TEXT NOT NULL, "sdk" VARCHAR(64) NOT NULL, "framework" VARCHAR(64) NOT NULL, '
               '"functions" TEXT NOT NULL, "unsupported" TEXT NOT NULL, '
               '"synced_at" INTEGER NOT NULL)'],
    "postgresql": ['CREATE TABLE "tj_apps" ("app_id" VARCHAR(128) NOT NULL PRIMARY KEY, '
                   '"url" TEXT NOT NULL, "sdk" VARCHAR(64) NOT NULL, '
                   '"framework" VARCHAR(64) NOT NULL, "functions" TEXT NOT NULL, '
                   '"unsupported" TEXT NOT NULL, "synced_at" BIGINT NOT NULL)'],
}

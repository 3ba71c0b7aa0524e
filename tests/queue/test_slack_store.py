"""What Honk keeps about Slack, on SQLite and the real PostgreSQL: links, single-use link states, bound channels,
and the threads that follow requests."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.queue.db import Database
from app.queue.slack import SlackStore


@pytest.fixture
def store(db: Database) -> SlackStore:
    return SlackStore(db)


def test_a_link_names_the_login_and_relinking_replaces_it(store: SlackStore) -> None:
    assert store.login_of("T1", "U1") is None
    store.link("T1", "U1", "alice", 101)
    store.link("T2", "U1", "bob", 102)  # the same user id in another workspace is another person
    assert (store.login_of("T1", "U1"), store.login_of("T2", "U1")) == ("alice", "bob")
    store.link("T1", "U1", "alice-work", 103)
    assert store.login_of("T1", "U1") == "alice-work"


def test_a_link_state_is_used_once(store: SlackStore) -> None:
    later = datetime.now() + timedelta(minutes=10)
    assert store.use_nonce("n1", later) is True
    assert store.use_nonce("n1", later) is False
    assert store.use_nonce("n2", later) is True


def test_a_channel_is_bound_to_one_repository(store: SlackStore) -> None:
    assert store.channel_repo("T1", "C1") is None
    store.bind("T1", "C1", "acme/widgets", "alice")
    store.bind("T1", "C1", "acme/gadgets", "bob")
    assert store.channel_repo("T1", "C1") == "acme/gadgets" and store.channel_repo("T1", "C2") is None


def test_a_thread_is_found_by_its_message_its_issue_and_its_pull_request(store: SlackStore) -> None:
    thread = store.open_thread(team_id="T1", channel_id="C1", thread_ts="1.000100", slack_user="U1",
                               requester="alice", repo="acme/widgets")
    assert store.open_thread(team_id="T1", channel_id="C1", thread_ts="1.000100", slack_user="U1",
                             requester="alice", repo="acme/widgets").id == thread.id  # a retry finds it
    store.update_thread(thread.id, status_ts="1.000200", issue_number=7)
    assert store.thread_of_issue("acme/widgets", 7).status_ts == "1.000200"
    assert store.thread_of_issue("acme/widgets", 8) is None
    store.update_thread(thread.id, pull_number=8)
    assert store.thread_of_issue("acme/widgets", 8).issue_number == 7
    assert store.thread_at("T1", "C1", "1.000100").pull_number == 8
    with pytest.raises(ValueError):
        store.update_thread(thread.id, repo="acme/other")

"""The Dropbox backend against the fake Dropbox, through the real SDK: what a user would see on
Dropbox's side after each call, and which of fadelink's errors each failure becomes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.backends.dropbox import Credentials, DropboxBackend, styled
from daemon.errors import NeedsSignIn, PermanentError, TransientError, Unreachable
from tests.fake_dropbox import FakeDropbox, SharedLink


@pytest.fixture
def meta() -> dict[str, str]:
    return {}


def backend(fake: FakeDropbox, meta: dict[str, str], **kw) -> DropboxBackend:
    token = fake.grant()
    return DropboxBackend(
        lambda: Credentials(fake.app_key, token, "dbid:test"),
        get_meta=meta.get,
        set_meta=meta.__setitem__,
        **kw,
    )


def photo(tmp_path: Path, size: int = 1000, name: str = "p.jpg") -> Path:
    p = tmp_path / name
    p.write_bytes(bytes(i % 251 for i in range(size)))
    return p


def test_share_then_revoke_and_delete(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta, folder="/shared")
    src = photo(tmp_path)
    remote = b.remote_path(src)
    assert remote.startswith("/shared/") and remote.endswith(".jpg") and "p.jpg" not in remote
    b.upload(src, remote)
    b.upload(src, remote)  # again after a crash: the same bytes are no conflict
    assert fake_dropbox.stored() == {remote: src.read_bytes()}

    deadline = time.time() + 600
    link = b.create_link(remote, deadline)
    (live,) = fake_dropbox.live_links()
    assert link.url == live.url and link.key is None
    # The server-side backstop: Dropbox itself expires the link at the deadline (rounded up).
    assert live.expires == datetime.fromtimestamp(int(deadline) + 1, UTC).replace(tzinfo=None)

    b.revoke(remote, link.url)
    assert fake_dropbox.live_links() == [] and fake_dropbox.stored() == {}
    b.revoke(remote, link.url)  # already gone: done, not an error
    b.revoke(remote, None)


def test_keep_names_shows_the_sanitised_name_and_keeps_two_apart(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta, folder="/shared", keep_names=True)
    src = photo(tmp_path, name="Beach_day_1.jpg")
    first, second = b.remote_path(src), b.remote_path(src)
    assert first != second
    for remote in (first, second):
        assert remote.startswith("/shared/Beach_day_1 ") and remote.endswith(".jpg")
        b.upload(src, remote)
    assert set(fake_dropbox.stored()) == {first, second}


def test_raw_style_keeps_rlkey_and_revokes_the_returned_url(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta, link_style="raw")
    src = photo(tmp_path)
    remote = b.remote_path(src)
    b.upload(src, remote)
    link = b.create_link(remote, time.time() + 600)
    (live,) = fake_dropbox.live_links()
    assert link.url != live.url and "raw=1" in link.url and "dl=" not in link.url
    assert link.url.split("?")[0] == live.url.split("?")[0]
    rlkey = live.url.split("rlkey=")[1].split("&")[0]
    assert f"rlkey={rlkey}" in link.url

    b.revoke(remote, link.url)  # the fake accepts only the exact URL it returned
    assert fake_dropbox.live_links() == [] and fake_dropbox.stored() == {}


def test_styled_rewrites_the_query_properly():
    url = "https://www.dropbox.com/scl/fi/abc/x%20y.jpg?rlkey=k1&st=s2&dl=0"
    assert styled(url, "preview") == url
    assert styled(url, "raw") == "https://www.dropbox.com/scl/fi/abc/x%20y.jpg?rlkey=k1&st=s2&raw=1"


def test_on_expiry_revoke_keeps_the_file(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta, on_expiry="revoke")
    src = photo(tmp_path)
    remote = b.remote_path(src)
    b.upload(src, remote)
    b.revoke(remote, b.create_link(remote, time.time() + 600).url)
    assert fake_dropbox.live_links() == [] and list(fake_dropbox.stored()) == [remote]


def test_every_link_to_the_file_is_revoked(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta)
    src = photo(tmp_path)
    remote = b.remote_path(src)
    b.upload(src, remote)
    link = b.create_link(remote, time.time() + 600)
    # Links made elsewhere (by hand, by an older run): more than a page of them, and Dropbox
    # gives no cursor when listing by path.
    for i in range(4):
        fake_dropbox.links.append(
            SharedLink(
                url=f"https://www.dropbox.com/scl/fi/x{i}/n.jpg?rlkey=r{i}&dl=0",
                path_lower=remote.lower(),
                name="n.jpg",
                file_id="id:x",
                expires=None,
                created=datetime.now(UTC).replace(tzinfo=None),
            )
        )
    assert len(fake_dropbox.live_links()) > fake_dropbox.list_page_size
    b.revoke(remote, link.url)
    assert fake_dropbox.live_links() == []
    assert sum(1 for ln in fake_dropbox.links if ln.revoked) == 5


def test_basic_account_gets_a_plain_link_and_is_not_asked_again(fake_dropbox, meta, tmp_path):
    fake_dropbox.basic_account = True
    b = backend(fake_dropbox, meta)
    for i in range(2):
        src = photo(tmp_path, name=f"{i}.jpg")
        remote = b.remote_path(src)
        b.upload(src, remote)
        b.create_link(remote, time.time() + 600)
    assert all(ln.expires is None for ln in fake_dropbox.live_links())
    refused = fake_dropbox.count("sharing/create_shared_link_with_settings", 409)
    assert refused == 1  # asked once; remembered in the journal's meta
    assert list(meta.values()) == ["1"]
    # A new backend (a restart) still knows.
    b2 = backend(fake_dropbox, meta)
    src = photo(tmp_path, name="3.jpg")
    remote = b2.remote_path(src)
    b2.upload(src, remote)
    b2.create_link(remote, time.time() + 600)
    assert fake_dropbox.count("sharing/create_shared_link_with_settings", 409) == 1


@pytest.mark.parametrize("with_metadata", [True, False])
def test_link_made_before_a_lost_answer_is_found_again(fake_dropbox, meta, tmp_path, with_metadata):
    fake_dropbox.already_exists_with_metadata = with_metadata
    b = backend(fake_dropbox, meta)
    src = photo(tmp_path)
    remote = b.remote_path(src)
    b.upload(src, remote)
    # Dropbox creates the link, then the connection drops before the answer arrives.
    fake_dropbox.inject("drop_after", "sharing/create_shared_link_with_settings")
    with pytest.raises(TransientError):
        b.create_link(remote, time.time() + 600)
    link = b.create_link(remote, time.time() + 600)
    (live,) = fake_dropbox.live_links()
    assert link.url == live.url


def test_large_file_goes_in_chunks_and_resumes(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta, chunk_size=1000)
    src = photo(tmp_path, size=4500)
    remote = b.remote_path(src)
    # The second chunk lands but its answer is lost: the retry is told the correct offset.
    fake_dropbox.inject("drop_after", "files/upload_session/append_v2")
    with pytest.raises(TransientError):
        b.upload(src, remote)
    fake_dropbox.inject("drop", "files/upload_session/finish")
    with pytest.raises(TransientError):
        b.upload(src, remote)
    b.upload(src, remote)
    assert fake_dropbox.stored() == {remote: src.read_bytes()}
    assert fake_dropbox.count("files/upload_session/start") == 1  # one session, resumed
    assert fake_dropbox.count("files/upload_session/append_v2", 409) == 1  # incorrect_offset


def test_errors_become_fadelinks_own(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta)
    src = photo(tmp_path)
    remote = b.remote_path(src)
    fake_dropbox.inject("429", "files/upload", times=2, retry_after=1)
    with pytest.raises(TransientError) as limited:
        b.upload(src, remote)  # the SDK retried once (bounded), then gave up
    assert limited.value.retry_after == 1
    assert fake_dropbox.count("files/upload", 429) == 2
    fake_dropbox.inject("5xx", "files/upload", times=2)
    with pytest.raises(TransientError):
        b.upload(src, remote)
    b.upload(src, remote)

    fake_dropbox.email_verified = False
    with pytest.raises(PermanentError, match="verify your email"):
        b.create_link(remote, time.time() + 600)
    fake_dropbox.email_verified = True

    with fake_dropbox.outage(), pytest.raises(Unreachable):
        b.create_link(remote, time.time() + 600)
    assert b.reachable()

    fake_dropbox.expire_access_tokens()  # refreshed transparently
    b.create_link(remote, time.time() + 600)

    fake_dropbox.revoke_refresh_tokens()
    with pytest.raises(NeedsSignIn, match="revoked"):
        b.revoke(remote, None)
    calls = len(fake_dropbox.calls)
    with pytest.raises(NeedsSignIn):
        b.revoke(remote, None)
    assert len(fake_dropbox.calls) == calls  # a refused token is not tried again
    assert not b.signed_in()


def test_a_new_sign_in_is_picked_up(fake_dropbox, meta, tmp_path):
    tokens = [fake_dropbox.grant()]
    b = DropboxBackend(lambda: Credentials(fake_dropbox.app_key, tokens[-1]))
    src = photo(tmp_path)
    remote = b.remote_path(src)
    fake_dropbox.revoke_refresh_tokens()
    with pytest.raises(NeedsSignIn):
        b.upload(src, remote)
    assert not b.signed_in()
    tokens.append(fake_dropbox.grant())  # `fadelink auth dropbox` ran
    assert b.signed_in()
    b.upload(src, remote)
    assert list(fake_dropbox.stored()) == [remote]


def test_not_signed_in(tmp_path):
    b = DropboxBackend(lambda: None)
    with pytest.raises(NeedsSignIn, match="fadelink auth dropbox"):
        b.upload(photo(tmp_path), "/x.jpg")
    assert not b.signed_in()


def test_a_missing_permission_is_named(fake_dropbox, meta, tmp_path):
    fake_dropbox.granted_scopes.discard("sharing.write")  # not ticked in the App Console
    b = backend(fake_dropbox, meta)
    src = photo(tmp_path)
    remote = b.remote_path(src)
    b.upload(src, remote)
    with pytest.raises(NeedsSignIn, match="lacks the sharing.write permission"):
        b.create_link(remote, time.time() + 600)


def test_extending_moves_the_server_side_expiry(fake_dropbox, meta, tmp_path):
    b = backend(fake_dropbox, meta, link_style="raw")
    src = photo(tmp_path)
    remote = b.remote_path(src)
    b.upload(src, remote)
    deadline = time.time() + 600
    link = b.create_link(remote, deadline)
    b.extend_link(remote, link.url, deadline + 3600)
    (live,) = fake_dropbox.live_links()
    assert live.expires == datetime.fromtimestamp(int(deadline) + 3601, UTC).replace(tzinfo=None)

    fake_dropbox.basic_account = True  # say, the plan was downgraded: remembered, no error
    b.extend_link(remote, link.url, deadline + 7200)
    assert list(meta.values()) == ["1"]
    calls = len(fake_dropbox.calls)
    b.extend_link(remote, link.url, deadline + 9000)
    assert len(fake_dropbox.calls) == calls  # not asked again

"""The fake Dropbox checked with the real SDK: what the SDK accepts from it, the daemon will."""

from __future__ import annotations

import hashlib
import urllib.request
from datetime import UTC, datetime, timedelta

import dropbox
import pytest
import requests
from dropbox import files, sharing
from dropbox.exceptions import ApiError, AuthError, InternalServerError, RateLimitError

from tests.fake_dropbox import FakeDropbox, content_hash


def client(fake: FakeDropbox, **kw) -> dropbox.Dropbox:
    return dropbox.Dropbox(
        oauth2_refresh_token=fake.grant(),
        app_key=fake.app_key,
        max_retries_on_rate_limit=kw.pop("max_retries_on_rate_limit", 0),
        max_retries_on_error=kw.pop("max_retries_on_error", 0),
        **kw,
    )


def test_content_hash_matches_dropbox_reference():
    # The definition: SHA-256 over the concatenated SHA-256 digests of every 4 MiB block.
    data = b"x" * (4 * 1024 * 1024 + 10)
    blocks = hashlib.sha256(data[: 4 * 1024 * 1024]).digest() + hashlib.sha256(b"x" * 10).digest()
    assert content_hash(data) == hashlib.sha256(blocks).hexdigest()
    assert content_hash(b"") == hashlib.sha256(b"").hexdigest()


def test_upload_link_revoke_delete_round_trip(fake_dropbox):
    dbx = client(fake_dropbox)
    meta = dbx.files_upload(b"photo bytes", "/a.jpg", mode=files.WriteMode.add)
    assert meta.size == 11 and meta.content_hash == content_hash(b"photo bytes")
    # The SDK sent the content hash; the fake checked it.
    assert fake_dropbox.stored() == {"/a.jpg": b"photo bytes"}
    # Identical content again with mode add is no conflict; different content is.
    dbx.files_upload(b"photo bytes", "/a.jpg", mode=files.WriteMode.add)
    with pytest.raises(ApiError) as conflict:
        dbx.files_upload(b"other", "/a.jpg", mode=files.WriteMode.add)
    assert conflict.value.error.get_path().reason.get_conflict().is_file()

    expires = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(hours=1)
    link = dbx.sharing_create_shared_link_with_settings(
        "/a.jpg", sharing.SharedLinkSettings(expires=expires)
    )
    assert isinstance(link, sharing.FileLinkMetadata)
    assert link.url.startswith("https://www.dropbox.com/scl/fi/") and "rlkey=" in link.url
    assert link.expires == expires and link.path_lower == "/a.jpg"

    with pytest.raises(ApiError) as exists:
        dbx.sharing_create_shared_link_with_settings("/a.jpg")
    again = exists.value.error.get_shared_link_already_exists()
    assert again.is_metadata() and again.get_metadata().url == link.url
    fake_dropbox.already_exists_with_metadata = False
    with pytest.raises(ApiError) as bare:
        dbx.sharing_create_shared_link_with_settings("/a.jpg")
    assert bare.value.error.is_shared_link_already_exists()
    assert bare.value.error.get_shared_link_already_exists() is None

    listed = dbx.sharing_list_shared_links(path="/a.jpg", direct_only=True)
    assert [ln.url for ln in listed.links] == [link.url] and not listed.has_more

    # Only the exact URL revokes.
    with pytest.raises(ApiError) as wrong:
        dbx.sharing_revoke_shared_link(link.url.replace("dl=0", "raw=1"))
    assert wrong.value.error.is_shared_link_not_found()
    dbx.sharing_revoke_shared_link(link.url)
    assert fake_dropbox.live_links() == []
    deleted = dbx.files_delete_v2("/a.jpg")
    assert isinstance(deleted.metadata, files.FileMetadata)
    with pytest.raises(ApiError) as gone:
        dbx.files_delete_v2("/a.jpg")
    assert gone.value.error.get_path_lookup().is_not_found()
    with pytest.raises(ApiError) as missing:
        dbx.files_get_metadata("/a.jpg")
    assert missing.value.error.get_path().is_not_found()


def test_upload_session_with_incorrect_offset(fake_dropbox):
    dbx = client(fake_dropbox)
    start = dbx.files_upload_session_start(b"abc")
    cursor = files.UploadSessionCursor(start.session_id, 3)
    dbx.files_upload_session_append_v2(b"def", cursor)
    with pytest.raises(ApiError) as offset:
        dbx.files_upload_session_append_v2(b"def", cursor)  # already landed
    assert offset.value.error.get_incorrect_offset().correct_offset == 6
    commit = files.CommitInfo("/big.png", mode=files.WriteMode.add)
    end = files.UploadSessionCursor(start.session_id, 6)
    meta = dbx.files_upload_session_finish(b"g", end, commit)
    assert meta.size == 7 and fake_dropbox.stored()["/big.png"] == b"abcdefg"


def test_faults_reach_the_sdk_as_dropbox_sends_them(fake_dropbox):
    dbx = client(fake_dropbox)
    dbx.users_get_current_account()  # signed in
    fake_dropbox.inject("429", "users/get_current_account", retry_after=7)
    with pytest.raises(RateLimitError) as limited:
        dbx.users_get_current_account()
    assert limited.value.backoff == 7
    fake_dropbox.inject("429_header", "users/get_current_account", retry_after=2)
    with pytest.raises(RateLimitError) as header:
        dbx.users_get_current_account()
    assert header.value.backoff == 2
    fake_dropbox.inject("5xx", "users/get_current_account")
    with pytest.raises(InternalServerError):
        dbx.users_get_current_account()
    fake_dropbox.inject("drop", "users/get_current_account")
    with pytest.raises(requests.exceptions.ConnectionError):
        dbx.users_get_current_account()

    # An expired access token is refreshed by the SDK, once, transparently.
    fake_dropbox.expire_access_tokens()
    account = dbx.users_get_current_account()
    assert account.email == "fay@example.org"
    assert fake_dropbox.count("oauth2/token") == 2

    # A revoked refresh token: invalid_grant, which the SDK reports as invalid_access_token.
    fake_dropbox.revoke_refresh_tokens()
    with pytest.raises(AuthError) as revoked:
        dbx.users_get_current_account()
    assert revoked.value.error.is_invalid_access_token()

    with fake_dropbox.outage(), pytest.raises(requests.exceptions.ConnectionError):
        client(fake_dropbox).users_get_current_account()


def test_account_rules(fake_dropbox):
    dbx = client(fake_dropbox)
    dbx.files_upload(b"x", "/x.jpg")
    soon = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(minutes=5)
    fake_dropbox.basic_account = True
    with pytest.raises(ApiError) as basic:
        dbx.sharing_create_shared_link_with_settings(
            "/x.jpg", sharing.SharedLinkSettings(expires=soon)
        )
    assert basic.value.error.get_settings_error().is_not_authorized()
    fake_dropbox.email_verified = False
    with pytest.raises(ApiError) as unverified:
        dbx.sharing_create_shared_link_with_settings("/x.jpg")
    assert unverified.value.error.is_email_not_verified()


def test_pkce_sign_in(fake_dropbox):
    flow = dropbox.DropboxOAuth2FlowNoRedirect(
        fake_dropbox.app_key,
        use_pkce=True,
        token_access_type="offline",
        scope=["files.content.write", "sharing.write"],
    )
    url = flow.start()
    assert url.startswith(f"https://{fake_dropbox.host}/oauth2/authorize?")
    ctx_page = urllib.request.urlopen(url, context=_ssl_context(fake_dropbox), timeout=10).read()
    code = ctx_page.decode().rsplit(" ", 1)[1].strip()
    result = flow.finish(code)
    assert result.refresh_token in fake_dropbox.refresh_tokens
    with pytest.raises(requests.HTTPError):
        flow.finish(code)  # a code works once


def _ssl_context(fake: FakeDropbox):
    import ssl

    return ssl.create_default_context(cafile=str(fake.ca_file))

"""Link-preview agents: the programs chat apps send to fetch a pasted link.

Recognising them is best effort (a user agent is whatever the client says it is), so nothing that
must hold depends on it: a view-once photo is only reachable through the reveal POST, which no
preview agent sends. For normal links, whose page shows the photo, a recognised agent is refused
the image (it would otherwise keep a copy on the chat company's servers) and never counts as a
view.
"""

from __future__ import annotations

# Lower-case substrings of User-Agent headers. Keep them specific: a short word such as "bot"
# would also match real phones ("CUBOT P20") and lock people out of their photo.
PREVIEW_AGENTS: tuple[tuple[str, str], ...] = (
    ("slackbot", "Slack"),
    ("slack-imgproxy", "Slack"),
    ("discordbot", "Discord"),
    ("telegrambot", "Telegram"),
    # WhatsApp's fetcher, and Signal's: Signal builds previews on the sender's device and
    # sends "WhatsApp/2" as its user agent.
    ("whatsapp", "WhatsApp / Signal"),
    # iMessage sends "facebookexternalhit/1.1 Facebot Twitterbot/1.0".
    ("facebookexternalhit", "Facebook / Messenger / Instagram / iMessage"),
    ("facebot", "Facebook / iMessage"),
    ("twitterbot", "X (Twitter) / iMessage"),
    ("linkedinbot", "LinkedIn"),
    ("skypeuripreview", "Microsoft Teams / Skype"),
    ("microsoftpreview", "Microsoft Teams / Outlook"),
    ("applebot", "Apple"),
    ("googlebot", "Google"),
    ("google-inspectiontool", "Google"),
    ("googleother", "Google"),
    ("bingbot", "Bing"),
    ("bingpreview", "Bing"),
    ("redditbot", "Reddit"),
    ("mastodon/", "Mastodon"),
    ("synapse (bot", "Matrix (Synapse)"),
    ("mattermost-bot", "Mattermost"),
    ("rocket.chat", "Rocket.Chat"),
    ("viber", "Viber"),
    ("snapchat", "Snapchat"),
    ("kakaotalk-scrap", "KakaoTalk"),
    ("pinterestbot", "Pinterest"),
    ("embedly", "Embedly"),
    ("iframely", "Iframely"),
    ("yandexbot", "Yandex"),
    ("duckduckbot", "DuckDuckGo"),
)


def preview_agent(user_agent: str | None) -> str | None:
    """Which chat app or crawler `user_agent` belongs to; None for anything else (browsers)."""
    if not user_agent:
        return None
    lowered = user_agent.lower()
    for needle, who in PREVIEW_AGENTS:
        if needle in lowered:
            return who
    return None

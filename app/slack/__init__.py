"""Ask from Slack (CONTRACT section 8): the bot's Web API client (`client`), its messages in Block Kit
(`blocks`), what people write read into commands (`commands`), and linking Slack users to GitHub logins
(`linking`).

A low layer, beside app/github: it imports only app/settings and the base modules (app/untyped), never the
jobs, the queue or the web app, which use it. Slack tokens stay in `client.SlackClient`; GitHub user tokens in
`linking.identify`.
"""

//! Secrets in URLs: the one place that decides what of a URL may be shown in errors, logs,
//! admin pages, `check` and `render` output.
//!
//! Webhook URLs often carry their credentials: `user:password@` userinfo, tokens in the query
//! string, and for some services (Slack, Teams, Discord, Zapier incoming webhooks) the whole
//! path. What is shown keeps the scheme, host, port and path, and masks the rest:
//! `https://***:***@hooks.example.com/in?token=***`, `https://hooks.slack.com/services/***`.

/// Hosts whose incoming-webhook URLs are secret as a whole path (the path is the credential).
const SECRET_PATH_HOSTS: &[&str] = &[
    "hooks.slack.com",
    "webhook.office.com",
    "discord.com",
    "discordapp.com",
    "hooks.zapier.com",
];

/// What replaces a secret.
const MASK: &str = "***";

/// `url` as it may be shown: userinfo, query values and fragment masked, and the path past its
/// first segment for hosts whose webhook URLs are secret as a whole path. Text that is not a
/// well-formed URL is masked by the same rules, as far as they apply.
pub fn url(url: &str) -> String {
    mask(url, false)
}

/// `url` as it may be shown when its whole path is a secret (incoming-webhook URLs of chat
/// services): like [`url`], and the path past its first segment masked whatever the host.
pub fn url_with_secret_path(url: &str) -> String {
    mask(url, true)
}

/// `text` with every URL in it (anything of the form `scheme://…` up to white space or a
/// quote) masked as by [`url`]: for error messages and log lines that may quote a URL.
pub fn urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        if start == at {
            // `://` without a scheme before it: not a URL, keep it and look further.
            out.push_str(&rest[..at + 3]);
            rest = &rest[at + 3..];
            continue;
        }
        let end = rest[at..]
            .find(|c: char| {
                c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`')
            })
            .map_or(rest.len(), |i| at + i);
        // Punctuation that closes a sentence or a parenthesis is shown after the URL.
        let candidate = rest[start..end].trim_end_matches([')', ']', '.', ',', ';', ':']);
        out.push_str(&rest[..start]);
        out.push_str(&url(candidate));
        out.push_str(&rest[start + candidate.len()..end]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn mask(text: &str, secret_path: bool) -> String {
    match reqwest::Url::parse(text) {
        Ok(parsed) if parsed.has_host() => mask_parsed(&parsed, secret_path),
        _ => mask_text(text, secret_path),
    }
}

/// A URL that parses: shown from its parts, as it is sent.
fn mask_parsed(u: &reqwest::Url, secret_path: bool) -> String {
    let mut out = format!("{}://", u.scheme());
    match (u.username().is_empty(), u.password()) {
        (true, None) => {}
        (_, Some(_)) => out.push_str("***:***@"),
        (false, None) => out.push_str("***@"),
    }
    let host = u.host_str().unwrap_or_default();
    out.push_str(host);
    if let Some(port) = u.port() {
        out.push_str(&format!(":{port}"));
    }
    push_path(&mut out, u.path(), secret_path || has_secret_path(host));
    push_query_and_fragment(&mut out, u.query(), u.fragment());
    out
}

/// Text that does not parse as a URL (a typo in the configuration, say): masked by the same
/// rules on its text, erring on the side of masking: everything before the last `@` of the
/// part up to the first `/` is taken for userinfo.
fn mask_text(text: &str, secret_path: bool) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(i) => text.split_at(i + 3),
        None => ("", text),
    };
    let (authority, after) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut out = scheme.to_string();
    let host_and_more = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            out.push_str(if userinfo.contains(':') {
                "***:***@"
            } else {
                "***@"
            });
            host
        }
        None => authority,
    };
    let host_end = host_and_more
        .find(['?', '#'])
        .unwrap_or(host_and_more.len());
    let host = &host_and_more[..host_end];
    out.push_str(host);
    let remainder = format!("{}{after}", &host_and_more[host_end..]);
    let path_end = remainder.find(['?', '#']).unwrap_or(remainder.len());
    let (path, tail) = remainder.split_at(path_end);
    push_path(&mut out, path, secret_path || has_secret_path(host));
    let (query, fragment) = match tail.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (tail, None),
    };
    push_query_and_fragment(&mut out, query.strip_prefix('?'), fragment);
    out
}

fn push_path(out: &mut String, path: &str, secret: bool) {
    if secret {
        out.push_str(&first_segment_masked(path));
    } else {
        out.push_str(path);
    }
}

fn push_query_and_fragment(out: &mut String, query: Option<&str>, fragment: Option<&str>) {
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query.split('&').map(masked_pair).collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        if !fragment.is_empty() {
            out.push_str(MASK);
        }
    }
}

/// `name=***` for `name=value`; a pair without `=` may be a bare token and is masked whole.
fn masked_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((name, "")) => format!("{name}="),
        Some((name, _)) => format!("{name}={MASK}"),
        None if pair.is_empty() => String::new(),
        None => MASK.to_string(),
    }
}

fn has_secret_path(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    SECRET_PATH_HOSTS
        .iter()
        .any(|h| name == *h || name.ends_with(&format!(".{h}")))
}

/// `/services/***` for `/services/T0/B0/secret`; `/***` when the first segment is all there is.
fn first_segment_masked(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    if rest.is_empty() {
        return path.to_string();
    }
    match rest.split_once('/') {
        Some((first, more)) if !more.is_empty() => format!("/{first}/{MASK}"),
        _ => format!("/{MASK}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_masked() {
        for (given, shown) in [
            (
                "https://hooks.example.com/path",
                "https://hooks.example.com/path",
            ),
            (
                "https://hooks.example.com/path?token=s3cret",
                "https://hooks.example.com/path?token=***",
            ),
            (
                "https://user:pw@host.example:8443/a/b?x=1&y=&z",
                "https://***:***@host.example:8443/a/b?x=***&y=&***",
            ),
            ("http://t0ken@host/", "http://***@host/"),
            ("http://a@b@host", "http://***@host/"),
            ("https://host/p#s3cret", "https://host/p#***"),
            (
                "https://hooks.slack.com/services/T0/B0/s3cret",
                "https://hooks.slack.com/services/***",
            ),
            (
                "https://acme.webhook.office.com/webhookb2/a@b/IncomingWebhook/s3cret/c",
                "https://acme.webhook.office.com/webhookb2/***",
            ),
            (
                "https://discord.com/api/webhooks/1/s3cret",
                "https://discord.com/api/***",
            ),
            (
                "HTTPS://HOOKS.SLACK.COM:443/s3cret",
                "https://hooks.slack.com/***",
            ),
            ("https://user:p#ss@host/?t=x", "https://***:***@host/?t=***"),
            ("not a url?token=s3cret#x", "not a url?token=***#***"),
            (
                "https://notslack.com/services/a",
                "https://notslack.com/services/a",
            ),
            ("user:pw@host/path?k=v", "***:***@host/path?k=***"),
            ("ftp://u:pw@h/?token=s3cret", "ftp://***:***@h/?token=***"),
            ("", ""),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
        assert_eq!(
            url_with_secret_path("https://chat.example/hooks/abc/s3cret?x=1"),
            "https://chat.example/hooks/***?x=***"
        );
    }

    #[test]
    fn urls_quoted_in_text_are_masked() {
        let error = "could not connect: error sending request for url \
                     (http://user:pw@127.0.0.1:9/in?token=s3cret): tcp connect error";
        assert_eq!(
            urls_in(error),
            "could not connect: error sending request for url \
             (http://***:***@127.0.0.1:9/in?token=***): tcp connect error"
        );
        assert_eq!(
            urls_in("see \"https://h/?a=b\", and https://u:p@h2."),
            "see \"https://h/?a=***\", and https://***:***@h2/."
        );
        for plain in ["no urls here", "a :// b", "://x", "ends with https://"] {
            assert_eq!(urls_in(plain), plain);
        }
    }
}

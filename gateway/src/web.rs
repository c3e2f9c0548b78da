//! The web dashboard's settings (`[web]`: sessions, cookies, the street map's configured
//! coordinates) and its files, embedded from `dashboards/web/` at build time so the
//! gateway binary serves them with nothing else installed.
//!
//! Does not handle requests (`api::session` and `api::views` do) nor decide permissions
//! (`people::roles`).

use serde::Deserialize;

use crate::config::ConfigIssue;

/// `[web]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// A session unused this long ends, minutes.
    pub session_idle_min: u64,
    /// A session ends this long after sign-in, hours.
    pub session_max_hours: u64,
    /// Mark the session cookie `Secure` (sent over HTTPS only; browsers also accept it
    /// from http://127.0.0.1 and http://localhost). Turn off only for plain HTTP on a
    /// trusted network.
    pub secure_cookies: bool,
    /// Street assets on the schematic map (`[[web.map]]`).
    pub map: Vec<MapAsset>,
}

/// `[[web.map]]`: where an asset stands.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MapAsset {
    /// Asset id, as its devices were provisioned (`--asset`).
    pub asset: String,
    /// Label on the map (default: the asset id).
    #[serde(default)]
    pub label: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Zone, for an asset with no device yet (else its devices' zone).
    #[serde(default)]
    pub zone: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle_min: 12 * 60,
            session_max_hours: 24,
            secure_cookies: true,
            map: Vec::new(),
        }
    }
}

impl WebConfig {
    /// How long sessions live, as the people records enforce it.
    pub fn session_limits(&self) -> crate::people::SessionLimits {
        crate::people::SessionLimits {
            idle_ms: self.session_idle_min * 60_000,
            max_ms: self.session_max_hours * 3_600_000,
        }
    }

    /// Adds every problem to `issues`, each by its key.
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let mut check = |ok: bool, key: String, message: &str| {
            if !ok {
                issues.push(ConfigIssue {
                    key,
                    message: message.into(),
                });
            }
        };
        check(
            (5..=7 * 24 * 60).contains(&self.session_idle_min),
            "web.session_idle_min".into(),
            "must be between 5 and 10080 (a week)",
        );
        check(
            (1..=30 * 24).contains(&self.session_max_hours),
            "web.session_max_hours".into(),
            "must be between 1 and 720 (30 days)",
        );
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.map.iter().enumerate() {
            check(
                !a.asset.trim().is_empty(),
                format!("web.map[{i}].asset"),
                "is required (the asset id its devices were provisioned with)",
            );
            check(
                seen.insert(a.asset.clone()),
                format!("web.map[{i}].asset"),
                "appears twice",
            );
            check(
                (-90.0..=90.0).contains(&a.lat),
                format!("web.map[{i}].lat"),
                "must be a latitude in degrees, -90..90",
            );
            check(
                (-180.0..=180.0).contains(&a.lon),
                format!("web.map[{i}].lon"),
                "must be a longitude in degrees, -180..180",
            );
        }
    }
}

/// One embedded dashboard file.
#[derive(Debug)]
pub struct Asset {
    /// URL path.
    pub path: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The file.
    pub body: &'static [u8],
}

macro_rules! assets {
    ($( $path:literal => $ctype:literal ),* $(,)?) => {
        /// Every file of the dashboard.
        pub const ASSETS: &[Asset] = &[
            $( Asset {
                path: $path,
                content_type: $ctype,
                body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/web", $path)),
            }, )*
        ];
    };
}

assets! {
    "/index.html" => "text/html; charset=utf-8",
    "/app.css" => "text/css; charset=utf-8",
    "/js/app.js" => "text/javascript; charset=utf-8",
    "/js/api.js" => "text/javascript; charset=utf-8",
    "/js/inbox.js" => "text/javascript; charset=utf-8",
    "/js/resident.js" => "text/javascript; charset=utf-8",
    "/js/street.js" => "text/javascript; charset=utf-8",
    "/js/ops.js" => "text/javascript; charset=utf-8",
    "/js/chart.js" => "text/javascript; charset=utf-8",
    "/vendor/uPlot.iife.min.js" => "text/javascript; charset=utf-8",
    "/vendor/uPlot.min.css" => "text/css; charset=utf-8",
    "/vendor/uPlot.LICENSE" => "text/plain; charset=utf-8",
}

/// The file served at `path` (`/` is the dashboard's page).
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let index = std::str::from_utf8(asset("/").unwrap().body).unwrap();
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
        }
        // Each local src/href of the page resolves to an embedded file; nothing external.
        for attr in ["src=\"", "href=\""] {
            for part in index.split(attr).skip(1) {
                let url = part.split('"').next().unwrap_or_default();
                if url.starts_with('#') {
                    continue;
                }
                assert!(!url.contains("//"), "index.html loads {url} from elsewhere");
                assert!(asset(url).is_some(), "index.html loads {url}, not embedded");
            }
        }
        for a in ASSETS.iter().filter(|a| a.path.starts_with("/js/")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for part in text
                .split("from '")
                .skip(1)
                .chain(text.split("from \"").skip(1))
            {
                let module = part.split(['\'', '"']).next().unwrap_or_default();
                let resolved = format!("/js/{}", module.trim_start_matches("./"));
                assert!(
                    asset(&resolved).is_some(),
                    "{} imports {module}, not embedded",
                    a.path
                );
            }
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{} names an external URL",
                a.path
            );
        }
    }

    #[test]
    fn bad_map_entries_are_named_by_key() {
        let w = WebConfig {
            session_idle_min: 1,
            map: vec![
                MapAsset {
                    asset: "L-1".into(),
                    label: String::new(),
                    lat: 95.0,
                    lon: 0.0,
                    zone: None,
                },
                MapAsset {
                    asset: "L-1".into(),
                    label: String::new(),
                    lat: 0.0,
                    lon: 200.0,
                    zone: None,
                },
            ],
            ..WebConfig::default()
        };
        let mut issues = Vec::new();
        w.validate(&mut issues);
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "web.session_idle_min",
                "web.map[0].lat",
                "web.map[1].asset",
                "web.map[1].lon"
            ]
        );
    }
}

//! Query strings: pagination (09-api.md §3) and route-specific filters, strictly parsed.

use std::collections::HashMap;

use uuid::Uuid;

use super::ApiError;

/// `cursor`, `limit` (1–100, default 20), `order` (default `desc`).
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) cursor: Option<Uuid>,
    pub(crate) limit: usize,
    pub(crate) desc: bool,
}

/// Splits `params` into the page and the filters named in `filters`; anything else is 400.
pub(crate) fn parse(
    params: Vec<(String, String)>,
    filters: &[&str],
) -> Result<(Page, HashMap<String, String>), ApiError> {
    let mut page = Page { cursor: None, limit: 20, desc: true };
    let mut rest = HashMap::new();
    for (k, v) in params {
        match k.as_str() {
            "cursor" => {
                page.cursor = Some(
                    Uuid::parse_str(&v)
                        .map_err(|_| ApiError::validation("cursor", "invalid_string", "cursor must be an id"))?,
                )
            }
            "limit" => {
                page.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| ApiError::validation("limit", "too_big", "limit must be 1-100"))?
            }
            "order" => {
                page.desc = match v.as_str() {
                    "desc" => true,
                    "asc" => false,
                    _ => return Err(ApiError::validation("order", "invalid_enum_value", "order must be asc or desc")),
                }
            }
            f if filters.contains(&f) => {
                rest.insert(k, v);
            }
            other => {
                return Err(ApiError::validation(
                    other,
                    "unrecognized_keys",
                    format!("unknown query parameter {other}"),
                ));
            }
        }
    }
    Ok((page, rest))
}

/// One page of `items` (sorted by ascending id, as UUID v7 ids sort by creation) and the next
/// cursor (the last returned id, or `None` on the last page).
pub(crate) fn paginate<T>(mut items: Vec<T>, id: impl Fn(&T) -> Uuid, page: &Page) -> (Vec<T>, Option<Uuid>) {
    if page.desc {
        items.reverse();
    }
    let start = match page.cursor {
        Some(c) => items.iter().position(|i| if page.desc { id(i) < c } else { id(i) > c }).unwrap_or(items.len()),
        None => 0,
    };
    let mut out: Vec<T> = items.into_iter().skip(start).take(page.limit + 1).collect();
    let next = if out.len() > page.limit {
        out.truncate(page.limit);
        out.last().map(&id)
    } else {
        None
    };
    (out, next)
}

/// A UUID path parameter; anything else is the route's not-found error.
pub(crate) fn uuid_param(raw: Option<&str>, not_found: impl FnOnce(&str) -> ApiError) -> Result<Uuid, ApiError> {
    let raw = raw.unwrap_or_default();
    Uuid::parse_str(raw).map_err(|_| not_found(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_both_directions_without_gaps() {
        let ids: Vec<Uuid> = (1..=5u128).map(Uuid::from_u128).collect();
        for desc in [true, false] {
            let mut page = Page { cursor: None, limit: 2, desc };
            let mut seen = Vec::new();
            loop {
                let (items, next) = paginate(ids.clone(), |u| *u, &page);
                seen.extend(items);
                match next {
                    Some(c) => page.cursor = Some(c),
                    None => break,
                }
            }
            let mut expected = ids.clone();
            if desc {
                expected.reverse();
            }
            assert_eq!(seen, expected);
        }
        assert!(parse(vec![("limit".into(), "0".into())], &[]).is_err());
        assert!(parse(vec![("bogus".into(), "1".into())], &[]).is_err());
        assert_eq!(parse(vec![("status".into(), "all".into())], &["status"]).unwrap().1["status"], "all");
    }
}

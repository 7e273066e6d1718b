//! The license list's query: filters, sort and paging parameters, parsed into the repository's filter.
#[allow(clippy::wildcard_imports)]
use super::*;

/// Filters, sort and paging of the license list; every filter is optional, combined with AND.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LicenseQuery {
    /// Exact license id.
    #[param(value_type = Option<Uuid>)]
    pub id: Option<String>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    /// An exact address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
    #[param(value_type = Option<crate::openapi::types::IpOrCidr>)]
    pub ip: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub product_id: Option<String>,
    #[param(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub period_months: Option<String>,
    /// Comma-separated statuses; `deleted` only appears when listed here.
    #[param(
        pattern = "^(ordered|in_progress|active|suspended|deleted)(,(ordered|in_progress|active|suspended|deleted))*$"
    )]
    pub status: Option<String>,
    /// `valid_until` on or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub valid_until_from: Option<String>,
    /// `valid_until` on or before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub valid_until_to: Option<String>,
    pub external_id: Option<String>,
    /// Admins only.
    #[param(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
    /// Last validated strictly before this instant (RFC 3339); licenses never validated are
    /// not included (ask for them with `never_validated=true`).
    #[param(value_type = Option<String>, format = DateTime)]
    pub validated_before: Option<String>,
    /// `true`: never validated (idle licenses); `false`: validated at least once.
    #[param(value_type = Option<bool>)]
    pub never_validated: Option<String>,
    /// `created_at`, `-created_at` (default), `valid_until`, `-valid_until`, `name`, `-name`,
    /// `last_validated_at`, `-last_validated_at` (licenses never validated come last either
    /// way).
    #[param(pattern = "^-?(created_at|valid_until|name|last_validated_at)$")]
    pub sort: Option<String>,
    /// Page size, 1..200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_time(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| errors.push(FieldError::new(field, "must be an RFC 3339 date-time")))
        .ok()
}

fn cidr_range(raw: &str) -> Option<([u8; 16], [u8; 16])> {
    use licentia_domain::license_record::ip_key;
    if let Ok(ip) = raw.parse::<IpAddr>() {
        let key = ip_key(ip);
        return Some((key, key));
    }
    let net: ipnet::IpNet = raw.parse().ok()?;
    Some((ip_key(net.network()), ip_key(net.broadcast())))
}

/// The list filters as text: the query of `GET /v1/licenses`, or a bulk operation's `filter`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FilterText<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub product_id: Option<&'a str>,
    pub period_months: Option<&'a str>,
    pub status: Option<&'a str>,
    pub valid_until_from: Option<&'a str>,
    pub valid_until_to: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub validated_before: Option<&'a str>,
    pub never_validated: Option<&'a str>,
    /// `metadata.<key>=<value>` pairs, as (key, value).
    pub metadata: &'a [(String, String)],
}

/// The most `metadata.<key>` filters one query may combine.
pub const MAX_METADATA_FILTERS: usize = 3;

/// Splits a license list query into its `metadata.<key>=<value>` filters (decoded) and the
/// other parameters, re-encoded for the usual strict parsing.
pub fn split_metadata_filters(query: &str) -> (String, Vec<(String, String)>) {
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    let mut metadata = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.strip_prefix("metadata.") {
            Some(key) => metadata.push((key.to_owned(), value.into_owned())),
            None => {
                rest.append_pair(&name, &value);
            }
        }
    }
    (rest.finish(), metadata)
}

/// Parses the license list's filters; every bad value adds an error naming
/// `<prefix><parameter>`, and `account_id` is refused to everyone but admins.
pub fn parse_filter(
    principal: &Principal,
    f: FilterText<'_>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> licentia_persistence::repo::licenses::Filter {
    let mut filter = licentia_persistence::repo::licenses::Filter::default();
    if let Some(id) = f.id {
        match id.parse::<Uuid>() {
            Ok(id) => filter.id = Some(LicenseId::from_uuid(id)),
            Err(_) => errors.push(FieldError::new(format!("{prefix}id"), "must be a UUID")),
        }
    }
    if let Some(name) = f.name {
        filter.name = Some(name.to_lowercase());
    }
    if let Some(ip) = f.ip {
        match cidr_range(ip) {
            Some(range) => filter.ip_range = Some(range),
            None => errors.push(FieldError::new(
                format!("{prefix}ip"),
                "must be an IP address or CIDR block",
            )),
        }
    }
    if let Some(p) = f.product_id {
        match p.parse::<Uuid>() {
            Ok(id) => filter.product_id = Some(ProductId::from_uuid(id)),
            Err(_) => errors.push(FieldError::new(
                format!("{prefix}product_id"),
                "must be a UUID",
            )),
        }
    }
    if let Some(p) = f.period_months {
        match p.parse::<i64>().ok().and_then(|n| Period::new(n).ok()) {
            Some(p) => filter.period_months = Some(p.months()),
            None => errors.push(FieldError::new(
                format!("{prefix}period_months"),
                "must be one of 1, 3, 6, 12, 24, 36",
            )),
        }
    }
    if let Some(list) = f.status {
        for s in list.split(',').map(str::trim) {
            if s.parse::<licentia_domain::license::LicenseStatus>().is_ok() {
                filter.statuses.push(s.to_owned());
            } else {
                errors.push(FieldError::new(
                    format!("{prefix}status"),
                    format!("unknown status {s:?}"),
                ));
            }
        }
    }
    if let Some(t) = f.valid_until_from {
        filter.valid_until_from = parse_time(&format!("{prefix}valid_until_from"), t, errors);
    }
    if let Some(t) = f.valid_until_to {
        filter.valid_until_to = parse_time(&format!("{prefix}valid_until_to"), t, errors);
    }
    filter.external_id = f.external_id.map(str::to_owned);
    if let Some(t) = f.validated_before {
        filter.validated_before = parse_time(&format!("{prefix}validated_before"), t, errors);
    }
    match f.never_validated {
        None => {}
        Some("true") => filter.never_validated = Some(true),
        Some("false") => filter.never_validated = Some(false),
        Some(_) => errors.push(FieldError::new(
            format!("{prefix}never_validated"),
            "must be true or false",
        )),
    }
    filter.metadata = metadata_filters(f.metadata, prefix, errors);
    if let Some(a) = f.account_id {
        filter.account_id = account_filter(principal, a, prefix, errors);
    }
    filter
}

/// `metadata.<key>=<value>` filters: at most [`MAX_METADATA_FILTERS`], each key once.
fn metadata_filters(
    metadata: &[(String, String)],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    if metadata.len() > MAX_METADATA_FILTERS {
        errors.push(FieldError::new(
            format!("{prefix}metadata"),
            format!("at most {MAX_METADATA_FILTERS} metadata filters"),
        ));
    }
    let mut kept = Vec::new();
    for (i, (key, value)) in metadata.iter().enumerate() {
        let field = format!("{prefix}metadata.{key}");
        if key.is_empty() || key.chars().count() > 64 {
            errors.push(FieldError::new(field, "keys are 1..64 characters"));
        } else if value.chars().count() > 512 {
            errors.push(FieldError::new(field, "values are at most 512 characters"));
        } else if metadata[..i].iter().any(|(k, _)| k == key) {
            errors.push(FieldError::new(field, "given more than once"));
        } else {
            kept.push((key.clone(), value.clone()));
        }
    }
    kept
}

/// `account_id`: administrators only.
fn account_filter(
    principal: &Principal,
    raw: &str,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<AccountId> {
    if !principal.is_admin() {
        errors.push(FieldError::new(
            format!("{prefix}account_id"),
            "only the provider's administrators may filter by account",
        ));
        return None;
    }
    match raw.parse::<Uuid>() {
        Ok(id) => Some(AccountId::from_uuid(id)),
        Err(_) => {
            errors.push(FieldError::new(
                format!("{prefix}account_id"),
                "must be a UUID",
            ));
            None
        }
    }
}

/// The license scope of the caller: every license for admins, the own account's otherwise.
pub fn caller_scope(principal: &Principal) -> LicenseScope {
    if principal.is_admin() {
        LicenseScope::All
    } else {
        LicenseScope::Tenant(principal.account_id())
    }
}

/// The filters of a license query as text.
fn filter_text<'a>(q: &'a LicenseFilterQuery, metadata: &'a [(String, String)]) -> FilterText<'a> {
    FilterText {
        id: q.id.as_deref(),
        name: q.name.as_deref(),
        ip: q.ip.as_deref(),
        product_id: q.product_id.as_deref(),
        period_months: q.period_months.as_deref(),
        status: q.status.as_deref(),
        valid_until_from: q.valid_until_from.as_deref(),
        valid_until_to: q.valid_until_to.as_deref(),
        external_id: q.external_id.as_deref(),
        account_id: q.account_id.as_deref(),
        validated_before: q.validated_before.as_deref(),
        never_validated: q.never_validated.as_deref(),
        metadata,
    }
}

/// The filters of `GET /v1/licenses` (and of its count and CSV export), without paging.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LicenseFilterQuery {
    /// Exact license id.
    #[param(value_type = Option<Uuid>)]
    pub id: Option<String>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    /// An exact address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
    #[param(value_type = Option<crate::openapi::types::IpOrCidr>)]
    pub ip: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub product_id: Option<String>,
    #[param(value_type = Option<crate::openapi::types::PeriodMonths>)]
    pub period_months: Option<String>,
    /// Comma-separated statuses; `deleted` only appears when listed here.
    #[param(
        pattern = "^(ordered|in_progress|active|suspended|deleted)(,(ordered|in_progress|active|suspended|deleted))*$"
    )]
    pub status: Option<String>,
    /// `valid_until` on or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub valid_until_from: Option<String>,
    /// `valid_until` on or before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub valid_until_to: Option<String>,
    pub external_id: Option<String>,
    /// Admins only.
    #[param(value_type = Option<Uuid>)]
    pub account_id: Option<String>,
    /// Last validated strictly before this instant (RFC 3339); licenses never validated are
    /// not included (ask for them with `never_validated=true`).
    #[param(value_type = Option<String>, format = DateTime)]
    pub validated_before: Option<String>,
    /// `true`: never validated (idle licenses); `false`: validated at least once.
    #[param(value_type = Option<bool>)]
    pub never_validated: Option<String>,
}

impl LicenseQuery {
    pub(super) fn filters(&self) -> LicenseFilterQuery {
        LicenseFilterQuery {
            id: self.id.clone(),
            name: self.name.clone(),
            ip: self.ip.clone(),
            product_id: self.product_id.clone(),
            period_months: self.period_months.clone(),
            status: self.status.clone(),
            valid_until_from: self.valid_until_from.clone(),
            valid_until_to: self.valid_until_to.clone(),
            external_id: self.external_id.clone(),
            account_id: self.account_id.clone(),
            validated_before: self.validated_before.clone(),
            never_validated: self.never_validated.clone(),
        }
    }
}

/// What every license query answers from: the parsed filters, or 422 naming each bad one.
pub(super) fn parse_request<T: serde::de::DeserializeOwned>(
    principal: &Principal,
    req: &HttpRequest,
    filters: impl FnOnce(&T) -> LicenseFilterQuery,
) -> ApiResult<(T, licenses::Filter, String, Vec<FieldError>)> {
    let (rest, metadata) = split_metadata_filters(req.query_string());
    let query: T = crate::extract::parse_query(&rest)?;
    let f = filters(&query);
    let mut errors = Vec::new();
    let filter = parse_filter(principal, filter_text(&f, &metadata), "", &mut errors);
    // Binds cursors to the exact filters they came from.
    let key = format!("{f:?}|{metadata:?}");
    Ok((query, filter, key, errors))
}

//! The gateway in-process against the dev OIDC issuer: every way a token can be refused, and the
//! JWKS cache (rotation picked up, unknown kids rate limited). No database: the requests that pass
//! authentication are ones the gateway answers without a query (a borrower asking for an
//! application that is not theirs gets 404 before any query).

mod auth;

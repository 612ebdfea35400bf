//! ACL and SCRAM credential APIs: CreateAcls (30), DescribeAcls (29),
//! DeleteAcls (31), DescribeUserScramCredentials (50) and
//! AlterUserScramCredentials (51). The authorizer and the credential store
//! live in `security/`; this is translation, validation and Kafka's error
//! codes.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;

use crate::broker::RequestContext;
use crate::handlers::str_bytes;
use crate::protocol::HandlerResult;
use crate::security::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType,
};
use crate::security::scram::{self, Alteration, Credential};

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

fn msg(s: impl Into<String>) -> Option<kafka_protocol::protocol::StrBytes> {
    Some(str_bytes(s))
}

pub async fn create_acls(
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> HandlerResult<CreateAclsResponse> {
    let results = |code: ResponseError, text: &str| {
        req.creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code.code())
                    .with_error_message(msg(text))
            })
            .collect()
    };
    let Some(authorizer) = &ctx.broker.authorizer else {
        let r = results(ResponseError::SecurityDisabled, NO_AUTHORIZER);
        return Ok(Some(CreateAclsResponse::default().with_results(r)));
    };
    if !ctx.authorize_cluster(Operation::Alter) {
        let r = results(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
        return Ok(Some(CreateAclsResponse::default().with_results(r)));
    }
    let mut valid = Vec::new();
    let mut out = Vec::with_capacity(req.creations.len());
    for c in &req.creations {
        let binding = (|| {
            Some(AclBinding {
                resource_type: ResourceType::from_code(c.resource_type)?,
                name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type)?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: Operation::from_code(c.operation)?,
                permission: Permission::from_code(c.permission_type)?,
            })
        })()
        .ok_or_else(|| {
            "Invalid ACL: unknown resource type, pattern type, operation or permission".to_string()
        })
        .and_then(|b| b.validate().map(|()| b));
        out.push(match binding {
            Ok(b) => {
                valid.push(b);
                AclCreationResult::default()
            }
            Err(e) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(msg(e)),
        });
    }
    if !valid.is_empty() {
        if let Err(e) = authorizer.create(valid) {
            tracing::error!(error = %e, "cannot persist ACLs");
            let r = results(ResponseError::UnknownServerError, "cannot persist ACLs");
            return Ok(Some(CreateAclsResponse::default().with_results(r)));
        }
    }
    Ok(Some(CreateAclsResponse::default().with_results(out)))
}

fn filter_of(
    resource_type: i8,
    name: Option<&kafka_protocol::protocol::StrBytes>,
    pattern_type: i8,
    principal: Option<&kafka_protocol::protocol::StrBytes>,
    host: Option<&kafka_protocol::protocol::StrBytes>,
    operation: i8,
    permission: i8,
) -> Option<AclFilter> {
    AclFilter::from_codes(
        resource_type,
        name.map(|s| s.to_string()),
        pattern_type,
        principal.map(|s| s.to_string()),
        host.map(|s| s.to_string()),
        operation,
        permission,
    )
}

pub async fn describe_acls(
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> HandlerResult<DescribeAclsResponse> {
    let fail = |code: ResponseError, text: &str| {
        Ok(Some(
            DescribeAclsResponse::default()
                .with_error_code(code.code())
                .with_error_message(msg(text)),
        ))
    };
    let Some(authorizer) = &ctx.broker.authorizer else {
        return fail(ResponseError::SecurityDisabled, NO_AUTHORIZER);
    };
    if !ctx.authorize_cluster(Operation::Describe) {
        return fail(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    let Some(filter) = filter_of(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    ) else {
        return fail(ResponseError::InvalidRequest, "Invalid ACL filter");
    };
    // One resource entry per pattern, in a stable order.
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    let mut acls = authorizer.describe(&filter);
    acls.sort();
    for a in acls {
        by_resource
            .entry((a.resource_type, a.name.clone(), a.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(a.principal))
                    .with_host(str_bytes(a.host))
                    .with_operation(a.operation.code())
                    .with_permission_type(a.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((kind, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(kind.code())
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern.code())
                .with_acls(acls)
        })
        .collect();
    Ok(Some(
        DescribeAclsResponse::default().with_resources(resources),
    ))
}

pub async fn delete_acls(
    ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> HandlerResult<DeleteAclsResponse> {
    let results = |code: ResponseError, text: &str| {
        req.filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code.code())
                    .with_error_message(msg(text))
            })
            .collect()
    };
    let Some(authorizer) = &ctx.broker.authorizer else {
        let r = results(ResponseError::SecurityDisabled, NO_AUTHORIZER);
        return Ok(Some(DeleteAclsResponse::default().with_filter_results(r)));
    };
    if !ctx.authorize_cluster(Operation::Alter) {
        let r = results(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
        return Ok(Some(DeleteAclsResponse::default().with_filter_results(r)));
    }
    let filters: Vec<Option<AclFilter>> = req
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = filters.iter().flatten().cloned().collect();
    let mut removed = match authorizer.delete(&valid) {
        Ok(r) => r.into_iter(),
        Err(e) => {
            tracing::error!(error = %e, "cannot persist ACLs");
            let r = results(ResponseError::UnknownServerError, "cannot persist ACLs");
            return Ok(Some(DeleteAclsResponse::default().with_filter_results(r)));
        }
    };
    let out = filters
        .iter()
        .map(|f| match f {
            None => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(msg("Invalid ACL filter")),
            Some(_) => DeleteAclsFilterResult::default().with_matching_acls(
                removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(a.resource_type.code())
                            .with_resource_name(str_bytes(a.name))
                            .with_pattern_type(a.pattern_type.code())
                            .with_principal(str_bytes(a.principal))
                            .with_host(str_bytes(a.host))
                            .with_operation(a.operation.code())
                            .with_permission_type(a.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    Ok(Some(DeleteAclsResponse::default().with_filter_results(out)))
}

pub async fn describe_user_scram_credentials(
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> HandlerResult<DescribeUserScramCredentialsResponse> {
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if !ctx.authorize_cluster(Operation::Describe) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = msg("Cluster authorization failed.");
        return Ok(Some(resp));
    }
    let all = ctx.broker.scram.describe();
    let result = |user: &str| {
        let mut r = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
        match all.get(user) {
            Some(infos) => {
                r.credential_infos = infos
                    .iter()
                    .map(|(m, iterations)| {
                        CredentialInfo::default()
                            .with_mechanism(m.code())
                            .with_iterations(*iterations)
                    })
                    .collect()
            }
            None => {
                r.error_code = ResponseError::ResourceNotFound.code();
                r.error_message = msg(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                ));
            }
        }
        r
    };
    resp.results = match req.users.filter(|u| !u.is_empty()) {
        None => all.keys().map(|u| result(u)).collect(),
        Some(users) => {
            let names: Vec<String> = users.iter().map(|u| u.name.to_string()).collect();
            let mut seen = HashSet::new();
            let dups: HashSet<&String> = names.iter().filter(|n| !seen.insert(*n)).collect();
            let mut done = HashSet::new();
            names
                .iter()
                .filter(|n| done.insert(*n))
                .map(|n| {
                    if dups.contains(n) {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(str_bytes(n.clone()))
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(msg(
                                "Cannot describe SCRAM credentials for the same user twice in a single request",
                            ))
                    } else {
                        result(n)
                    }
                })
                .collect()
        }
    };
    Ok(Some(resp))
}

/// A user's changes in one request, or why they are refused.
type UserChanges = Result<Vec<Alteration>, (ResponseError, String)>;

pub async fn alter_user_scram_credentials(
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> HandlerResult<AlterUserScramCredentialsResponse> {
    // Per user, in request order: an error, or the changes to apply.
    let mut users: Vec<(String, UserChanges)> = Vec::new();
    let authorized = ctx.authorize_cluster(Operation::Alter);
    let mut seen = HashSet::new();
    let changes = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism, Some(u))),
        );
    for (user, code, upsert) in changes {
        let i = match users.iter().position(|(u, _)| *u == user) {
            Some(i) => i,
            None => {
                users.push((user.clone(), Ok(Vec::new())));
                users.len() - 1
            }
        };
        let outcome = (|| {
            if !authorized {
                return Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "Cluster authorization failed.".to_string(),
                ));
            }
            if user.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "Username must not be empty".into(),
                ));
            }
            let mechanism = scram::Mechanism::from_code(code).ok_or((
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism".to_string(),
            ))?;
            if !seen.insert((user.clone(), code)) {
                return Err((
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request".into(),
                ));
            }
            Ok(match upsert {
                None => {
                    if !ctx.broker.scram.exists(&user, mechanism) {
                        return Err((
                            ResponseError::ResourceNotFound,
                            "Attempt to delete a user credential that does not exist".into(),
                        ));
                    }
                    Alteration::Delete {
                        user: user.clone(),
                        mechanism,
                    }
                }
                Some(u) => {
                    if u.iterations < scram::MIN_ITERATIONS {
                        return Err((
                            ResponseError::UnacceptableCredential,
                            "Too few iterations".into(),
                        ));
                    }
                    if u.iterations > scram::MAX_ITERATIONS {
                        return Err((
                            ResponseError::UnacceptableCredential,
                            "Too many iterations".into(),
                        ));
                    }
                    if u.salt.is_empty() || u.salted_password.is_empty() {
                        return Err((
                            ResponseError::UnacceptableCredential,
                            "Salt and salted password must not be empty".into(),
                        ));
                    }
                    Alteration::Upsert {
                        user: user.clone(),
                        mechanism,
                        credential: Credential::from_salted_password(
                            mechanism,
                            &u.salt,
                            u.iterations,
                            &u.salted_password,
                        ),
                    }
                }
            })
        })();
        match (outcome, &mut users[i].1) {
            (Ok(change), Ok(list)) => list.push(change),
            (Err(e), state) => {
                if state.is_ok() {
                    *state = Err(e);
                }
            }
            (Ok(_), Err(_)) => {}
        }
    }
    // A user's changes apply together or not at all.
    let mut results = Vec::with_capacity(users.len());
    for (user, state) in users {
        let mut r = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
        match state {
            Ok(changes) => {
                if let Err(e) = ctx.broker.scram.apply(changes) {
                    tracing::error!(error = %e, "cannot persist SCRAM credentials");
                    r.error_code = ResponseError::UnknownServerError.code();
                    r.error_message = msg("cannot persist SCRAM credentials");
                }
            }
            Err((code, text)) => {
                r.error_code = code.code();
                r.error_message = msg(text);
            }
        }
        results.push(r);
    }
    Ok(Some(
        AlterUserScramCredentialsResponse::default().with_results(results),
    ))
}

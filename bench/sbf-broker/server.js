'use strict';

// The starter broker (examples/starter-broker) written on SAP's Service Broker Framework,
// so that bench/run-broker-bench can compare the two on the same catalog and the same
// provider behaviour on the benchmarked paths. State lives in memory (Maps); the C broker
// keeps its instances in SQLite under --data, so per provision it does more work than this.
//
// Environment:
//   PORT                 port to listen on (127.0.0.1 only); 0 picks a free one
//   OSB_BROKER_USER      Basic auth user     (default: bench)
//   OSB_BROKER_PASSWORD  Basic auth password (default: bench-secret-pw)
//   STARTER_CATALOG      catalog file (default: ../../examples/starter-broker/catalog.json)
//   PUBLIC_URL           base of the data API `url` in binding credentials
//                        (default: http://127.0.0.1:PORT, as the C broker's --public-url)
//   ASYNC_SECONDS        how long a premium provision takes (default 3, as the C broker)

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const Broker = require('@sap/sbf');

const catalogFile = process.env.STARTER_CATALOG ||
    path.resolve(__dirname, '../../examples/starter-broker/catalog.json');
const catalog = JSON.parse(fs.readFileSync(catalogFile, 'utf8'));

const user = process.env.OSB_BROKER_USER || 'bench';
const password = process.env.OSB_BROKER_PASSWORD || 'bench-secret-pw';
let publicUrl = process.env.PUBLIC_URL || '';
const asyncMs = Number(process.env.ASYNC_SECONDS || 3) * 1000;

// plan id -> plan name, for the sync/async decision
const planNames = new Map();
for (const service of catalog.services) {
    for (const plan of service.plans) {
        planNames.set(plan.id, plan.name);
    }
}
const SYNC_PLANS = new Set(['lite', 'standard']);

const instances = new Map(); // instance_id -> { service_id, plan_id, parameters, context }
const bindings = new Map();  // binding_id  -> { instance_id, service_id, plan_id, parameters, credentials }
const operations = new Map(); // operation id -> { state, description }

// sbf's error handler answers err.statusCode with {"description": err.message}; it has no
// way to add the OSB "error" code (e.g. AsyncRequired) to the body.
function httpError(statusCode, message) {
    const err = new Error(message);
    err.statusCode = statusCode;
    return err;
}

function sameJson(a, b) {
    return JSON.stringify(a || {}) === JSON.stringify(b || {});
}

const hooks = {
    onProvision(params, callback) {
        const id = params.instance_id;
        const existing = instances.get(id);
        if (existing) {
            if (existing.service_id === params.service_id && existing.plan_id === params.plan_id &&
                sameJson(existing.parameters, params.parameters)) {
                // sbf always answers 201 on success; the spec's 200 for an identical
                // repeat cannot be expressed through the hook.
                return callback(null, {});
            }
            return callback(httpError(409, `service instance ${id} exists with different attributes`));
        }

        const record = {
            service_id: params.service_id,
            plan_id: params.plan_id,
            parameters: params.parameters || {},
            context: params.context || {}
        };

        if (SYNC_PLANS.has(planNames.get(params.plan_id))) {
            instances.set(id, record);
            return callback(null, {});
        }

        // premium: dedicated storage, provisioned asynchronously
        if (params.accepts_incomplete !== 'true') {
            return callback(httpError(422, 'AsyncRequired: this plan can only be provisioned asynchronously'));
        }
        const operation = `provision-${crypto.randomUUID()}`;
        instances.set(id, record);
        operations.set(operation, { state: 'in progress', description: 'Allocating dedicated storage.' });
        setTimeout(() => operations.set(operation, { state: 'succeeded', description: 'The dedicated namespace is ready.' }),
            asyncMs).unref();
        return callback(null, { async: true, operation });
    },

    onUpdate(params, callback) {
        const existing = instances.get(params.instance_id);
        if (!existing) {
            return callback(httpError(404, `service instance ${params.instance_id} not found`));
        }
        if (params.plan_id) {
            existing.plan_id = params.plan_id;
        }
        if (params.parameters) {
            existing.parameters = params.parameters;
        }
        if (params.context) {
            existing.context = params.context;
        }
        return callback(null, {});
    },

    onDeprovision(params, callback) {
        if (!instances.delete(params.instance_id)) {
            return callback(httpError(410, `service instance ${params.instance_id} does not exist`));
        }
        return callback(null, {});
    },

    onLastOperation(params, callback) {
        const op = operations.get(params.operation);
        if (!op) {
            return callback(httpError(404, `operation ${params.operation} not found`));
        }
        return callback(null, { state: op.state, description: op.description });
    },

    onFetchInstanceParams(params, callback) {
        const existing = instances.get(params.instance_id);
        if (!existing) {
            return callback(httpError(404, `service instance ${params.instance_id} not found`));
        }
        return callback(null, {
            service_id: existing.service_id,
            plan_id: existing.plan_id,
            parameters: existing.parameters
        });
    },

    onBind(params, callback) {
        const instance = instances.get(params.instance_id);
        if (!instance) {
            return callback(httpError(404, `service instance ${params.instance_id} not found`));
        }
        const existing = bindings.get(params.binding_id);
        if (existing) {
            if (existing.instance_id === params.instance_id && sameJson(existing.parameters, params.parameters)) {
                return callback(null, { credentials: existing.credentials });
            }
            return callback(httpError(409, `service binding ${params.binding_id} exists with different attributes`));
        }
        const parameters = params.parameters || {};
        const credentials = {
            url: `${publicUrl}/kv/${encodeURIComponent(params.instance_id)}`,
            apikey: crypto.randomBytes(32).toString('hex'),
            role: parameters.role || 'writer'
        };
        bindings.set(params.binding_id, {
            instance_id: params.instance_id,
            service_id: params.service_id,
            plan_id: params.plan_id,
            parameters,
            credentials
        });
        return callback(null, { credentials });
    },

    onUnbind(params, callback) {
        if (!bindings.delete(params.binding_id)) {
            return callback(httpError(410, `service binding ${params.binding_id} does not exist`));
        }
        return callback(null, {});
    },

    onFetchBindingParams(params, callback) {
        const existing = bindings.get(params.binding_id);
        if (!existing || existing.instance_id !== params.instance_id) {
            return callback(httpError(404, `service binding ${params.binding_id} not found`));
        }
        return callback(null, { credentials: existing.credentials, parameters: existing.parameters });
    }
};

const broker = new Broker({
    catalog,
    brokerCredentials: { [user]: password },
    hooks,
    // No XSUAA or IAS instance is bound: the onBind hook issues the credentials itself.
    autoCredentials: false,
    // sbf refuses to start with audit logging on unless an SAP Audit Log service instance is
    // bound (VCAP_SERVICES); there is none outside SAP BTP, so it is switched off.
    enableAuditLog: false
});

// Serve broker.app ourselves (the pattern sbf's README shows for HTTPS) so that it binds to
// the loopback address only; Broker.start() would listen on every interface.
const server = http.createServer(broker.app);
server.listen(Number(process.env.PORT || 8080), '127.0.0.1', () => {
    const { address, port } = server.address();
    publicUrl = publicUrl || `http://${address}:${port}`;
    console.log(`sbf broker listening on http://${address}:${port}`);
});

function shutdown() {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

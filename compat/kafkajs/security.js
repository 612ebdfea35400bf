// kafkajs over SASL (PLAIN, SCRAM-SHA-256/512), TLS and mTLS, and its ACL
// admin API, against a Weir broker; driven by compat/test_security.py.
// Usage: node security.js CLIENT_JSON SCENARIO TOPIC [ARGS_JSON]
//   CLIENT_JSON: {brokers: ["127.0.0.1:P"], sasl?: {mechanism, username, password},
//                 ssl?: true | {ca?: PATH, cert?: PATH, key?: PATH}}
// Prints one JSON object with what happened; the Python test asserts on it.
const fs = require('fs')
const { Kafka, logLevel, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = require('kafkajs')

const [clientJson, scenario, topic, argsJson] = process.argv.slice(2)
const client = JSON.parse(clientJson)
const args = argsJson ? JSON.parse(argsJson) : {}

function kafkaOptions(retries) {
  const options = {
    clientId: 'weir-compat-security',
    brokers: client.brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    authenticationTimeout: 5000,
    requestTimeout: 10000,
    // KIP-368: re-authenticate 1 s before the broker's session ends
    // (kafkajs' default of 10 s would re-authenticate before every request
    // under a short connections-max-reauth-ms).
    reauthenticationThreshold: 1000,
    retry: { retries, initialRetryTime: 100, maxRetryTime: 1000 },
  }
  if (client.sasl) options.sasl = client.sasl
  if (client.ssl === true) {
    options.ssl = true // Node's default CA store
  } else if (client.ssl) {
    const ssl = {}
    if (client.ssl.ca) ssl.ca = [fs.readFileSync(client.ssl.ca, 'utf8')]
    if (client.ssl.cert) ssl.cert = fs.readFileSync(client.ssl.cert, 'utf8')
    if (client.ssl.key) ssl.key = fs.readFileSync(client.ssl.key, 'utf8')
    options.ssl = ssl
  }
  return options
}

// The whole error chain: kafkajs wraps the cause (e.g. a
// KafkaJSSASLAuthenticationError inside a KafkaJSNonRetriableError).
function describe(e) {
  const names = []
  const messages = []
  const types = []
  const codes = []
  for (let cur = e, depth = 0; cur && depth < 8; cur = cur.cause || cur.originalError, depth++) {
    names.push(cur.name)
    messages.push(String(cur.message))
    if (cur.type) types.push(cur.type)
    if (cur.code !== undefined) codes.push(cur.code)
  }
  return { names, messages, types, codes }
}

const kafka = new Kafka(kafkaOptions(3))
// For attempts that must be refused: no retries, so a refusal is quick.
const strict = new Kafka(kafkaOptions(0))

async function readGroup(name, groupId, expected) {
  const c = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
  await c.connect()
  await c.subscribe({ topic: name, fromBeginning: true })
  const got = []
  let last = -1
  await c.run({
    autoCommit: false,
    eachMessage: async ({ message }) => { got.push(message.value.toString()); last = Number(message.offset) },
  })
  const start = Date.now()
  while (got.length < expected && Date.now() - start < 20000) {
    await new Promise(r => setTimeout(r, 100))
  }
  if (last >= 0) await c.commitOffsets([{ topic: name, partition: 0, offset: String(last + 1) }])
  await c.disconnect()
  return got
}

const scenarios = {
  // Create the topic, produce 5 records, consume them with a group and
  // commit; the committed offset is read back with the admin client.
  async roundTrip() {
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
    const p = kafka.producer()
    await p.connect()
    const values = [0, 1, 2, 3, 4].map(i => `js-${i}`)
    const [r] = await p.send({ topic, acks: -1, messages: values.map(value => ({ value })) })
    await p.disconnect()
    const groupId = `js-${topic}`
    const got = await readGroup(topic, groupId, values.length)
    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] })
    await admin.disconnect()
    return {
      baseOffset: Number(r.baseOffset),
      values: got,
      committed: offsets[0].partitions[0].offset,
      partitions: metadata.topics[0].partitions.length,
    }
  },

  // Connect and send one record without retries: {ok} or the error chain.
  async produce() {
    const p = strict.producer({ allowAutoTopicCreation: false })
    try {
      await p.connect()
      const [r] = await p.send({ topic, acks: -1, messages: [{ value: args.value || 'x' }] })
      return { ok: true, offset: Number(r.baseOffset) }
    } catch (e) {
      return { ok: false, error: describe(e) }
    } finally {
      await p.disconnect().catch(() => {})
    }
  },

  // Only connect an admin client and list topics: {ok, topics} or the error chain.
  async connect() {
    const admin = strict.admin()
    try {
      await admin.connect()
      const topics = await admin.listTopics()
      return { ok: true, topics }
    } catch (e) {
      return { ok: false, error: describe(e) }
    } finally {
      await admin.disconnect().catch(() => {})
    }
  },

  // CreateAcls, DescribeAcls, DeleteAcls for principal args.principal on
  // resources named after the topic.
  async acls() {
    const admin = kafka.admin()
    await admin.connect()
    const principal = args.principal
    const acl = [
      {
        resourceType: AclResourceTypes.TOPIC, resourceName: topic,
        resourcePatternType: ResourcePatternTypes.LITERAL, principal, host: '*',
        operation: AclOperationTypes.READ, permissionType: AclPermissionTypes.ALLOW,
      },
      {
        resourceType: AclResourceTypes.TOPIC, resourceName: `${topic}-`,
        resourcePatternType: ResourcePatternTypes.PREFIXED, principal, host: '*',
        operation: AclOperationTypes.WRITE, permissionType: AclPermissionTypes.ALLOW,
      },
      {
        resourceType: AclResourceTypes.GROUP, resourceName: `g-${topic}`,
        resourcePatternType: ResourcePatternTypes.LITERAL, principal, host: '*',
        operation: AclOperationTypes.READ, permissionType: AclPermissionTypes.DENY,
      },
    ]
    await admin.createAcls({ acl })
    const describeFilter = {
      resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY,
      principal, host: '*', operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
    }
    const all = await admin.describeAcls(describeFilter)
    // MATCH: the literal ACL of the topic and the prefixed ACL its name starts with.
    const matched = await admin.describeAcls({
      resourceType: AclResourceTypes.TOPIC, resourceName: `${topic}-x`,
      resourcePatternType: ResourcePatternTypes.MATCH, principal, host: '*',
      operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
    })
    const deleted = await admin.deleteAcls({
      filters: [{
        resourceType: AclResourceTypes.TOPIC, resourceName: `${topic}-`,
        resourcePatternType: ResourcePatternTypes.PREFIXED, principal, host: '*',
        operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
      }],
    })
    const after = await admin.describeAcls(describeFilter)
    await admin.disconnect()
    return { all: all.resources, matched: matched.resources, deleted: deleted.filterResponses, after: after.resources }
  },
}

scenarios[scenario]()
  .then(r => { console.log(JSON.stringify(r)); process.exit(0) })
  .catch(e => { console.log(JSON.stringify({ error: String(e && (e.stack || e)), chain: describe(e) })); process.exit(1) })

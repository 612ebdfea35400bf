// kafkajs scenarios against a Weir broker; driven by compat/test_kafkajs.py.
// Usage: node scenarios.js BROKER SCENARIO TOPIC
// Prints one JSON object with what happened; the Python test asserts on it.
const { Kafka, logLevel } = require('kafkajs')

const [broker, scenario, topic] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'weir-compat', brokers: [broker], logLevel: logLevel.NOTHING })

async function createTopic(name, numPartitions = 1) {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: name, numPartitions }] })
  await admin.disconnect()
}

// Every value from the start of `name` with the consumer's default
// isolation (kafkajs reads committed), stopping after `idleMs` of silence.
async function readAll(name, idleMs = 1500) {
  const c = kafka.consumer({ groupId: `reader-${name}-${Date.now()}` })
  await c.connect()
  await c.subscribe({ topic: name, fromBeginning: true })
  const got = []
  let last = Date.now()
  await c.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); last = Date.now() } })
  const start = Date.now()
  while (Date.now() - last < idleMs || (got.length === 0 && Date.now() - start < 8000)) {
    await new Promise(r => setTimeout(r, 100))
  }
  await c.disconnect()
  return got
}

const scenarios = {
  // 200 records from an idempotent producer, acks=all, in order.
  async idempotent() {
    await createTopic(topic)
    const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await p.connect()
    const offsets = []
    for (let i = 0; i < 20; i++) {
      const messages = Array.from({ length: 10 }, (_, j) => ({ value: `v${i * 10 + j}` }))
      const [r] = await p.send({ topic, acks: -1, messages })
      offsets.push(Number(r.baseOffset))
    }
    await p.disconnect()
    return { offsets, values: await readAll(topic) }
  },

  // commit, abort, commit: a read_committed consumer sees only commits.
  async transactions() {
    await createTopic(topic, 2)
    const p = kafka.producer({ transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1 })
    await p.connect()
    for (const [label, commit] of [['c1', true], ['a1', false], ['c2', true]]) {
      const tx = await p.transaction()
      await tx.send({ topic, messages: [0, 1, 2].map(i => ({ value: `${label}-${i}`, partition: i % 2 })) })
      if (commit) await tx.commit(); else await tx.abort()
    }
    await p.disconnect()
    return { values: (await readAll(topic)).sort() }
  },

  // consume-transform-produce: offsets committed with the transaction.
  async sendOffsets() {
    const source = `${topic}-in`
    const sink = `${topic}-out`
    await createTopic(source)
    await createTopic(sink)
    const plain = kafka.producer()
    await plain.connect()
    await plain.send({ topic: source, messages: [0, 1, 2, 3, 4].map(i => ({ value: `m${i}` })) })
    await plain.disconnect()
    const group = `etl-${topic}`
    const p = kafka.producer({ transactionalId: `etl-${topic}`, idempotent: true, maxInFlightRequests: 1 })
    await p.connect()
    const tx = await p.transaction()
    await tx.send({ topic: sink, messages: [{ value: 'out' }] })
    await tx.sendOffsets({ consumerGroupId: group, topics: [{ topic: source, partitions: [{ partition: 0, offset: '5' }] }] })
    const admin = kafka.admin()
    await admin.connect()
    const before = await admin.fetchOffsets({ groupId: group, topics: [source] })
    await tx.commit()
    const after = await admin.fetchOffsets({ groupId: group, topics: [source] })
    await admin.disconnect()
    await p.disconnect()
    return {
      before: before[0].partitions[0].offset,
      after: after[0].partitions[0].offset,
      sink: await readAll(sink),
    }
  },

  // Reads a topic someone else wrote (e.g. with a topic compression.type).
  async readOnly() {
    return { values: await readAll(topic) }
  },

  // A second producer with the same transactional id fences the first.
  async fencing() {
    await createTopic(topic)
    const tid = `fence-${topic}`
    const zombie = kafka.producer({ transactionalId: tid, idempotent: true, maxInFlightRequests: 1, retry: { retries: 1 } })
    await zombie.connect()
    const ztx = await zombie.transaction()
    await ztx.send({ topic, messages: [{ value: 'zombie' }] })
    const fresh = kafka.producer({ transactionalId: tid, idempotent: true, maxInFlightRequests: 1 })
    await fresh.connect()
    const ftx = await fresh.transaction()
    await ftx.send({ topic, messages: [{ value: 'fresh' }] })
    await ftx.commit()
    let zombieError = null
    try {
      await ztx.commit()
    } catch (e) {
      zombieError = e.type || e.name
    }
    await fresh.disconnect()
    await zombie.disconnect().catch(() => {})
    return { zombieError, values: await readAll(topic) }
  },
}

scenarios[scenario]()
  .then(r => { console.log(JSON.stringify(r)); process.exit(0) })
  .catch(e => { console.log(JSON.stringify({ error: String(e && (e.stack || e)) })); process.exit(1) })

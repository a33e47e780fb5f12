"""The Lua scripts of the jobs protocol, each with its KEYS/ARGV header.

Only what must be atomic, or would otherwise cost a round trip per job, is a script; the happy
path of a job uses none (see ``JobStream``).
"""

from __future__ import annotations

from service.jobs import idempotency
from service.jobs.messages import DATA_FIELD

# Submit a job that carries an Idempotency-Key: bind the key, or answer the job it is bound to.
# KEYS: the model's jobs stream, job meta, idempotency hash, the set of models with a stream
# ARGV: job data, meta, meta ttl, job id, body hash, created at, idempotency ttl, model
# -> {'existing', HGETALL of the hash} or {'queued'}
SUBMIT_IDEMPOTENT = (
    """
local existing = redis.call('HGETALL', KEYS[3])
if #existing > 0 then return {'existing', existing} end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('XADD', KEYS[1], '*', '@DATA', ARGV[1])
redis.call('SADD', KEYS[4], ARGV[8])
redis.call('HSET', KEYS[3], '@JOB_ID', ARGV[4], '@BODY_HASH', ARGV[5], '@CREATED_AT', ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[7])
return {'queued'}
""".replace("@DATA", DATA_FIELD.decode())
    .replace("@JOB_ID", idempotency.JOB_ID_FIELD)
    .replace("@BODY_HASH", idempotency.BODY_HASH_FIELD)
    .replace("@CREATED_AT", idempotency.CREATED_AT_FIELD)
)

# Copy a reply into its Idempotency-Key's hash, only while the hash exists (never recreating an
# expired one without its TTL) and only the first time.
# KEYS: idempotency hash. ARGV: reply data
COPY_REPLY = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSETNX', KEYS[1], '@REPLY', ARGV[1]) end
return 1
""".replace("@REPLY", idempotency.REPLY_FIELD)

# Renew the leases of the jobs a consumer runs: one XPENDING lists what it still holds, one XCLAIM
# per 1,000 entries resets their idle time (JUSTID: the delivery count is left alone).
# KEYS: jobs stream. ARGV: group, consumer, message ids... -> the ids renewed (the others were taken)
RENEW = """
local mine = {}
for _, e in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000000, ARGV[2])) do mine[e[1]] = true end
local function claim(batch)
  batch[#batch + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(batch))
end
local kept, batch = {}, {}
for i = 3, #ARGV do
  if mine[ARGV[i]] then
    kept[#kept + 1] = ARGV[i]
    batch[#batch + 1] = ARGV[i]
    if #batch == 1000 then claim(batch); batch = {} end
  end
end
if #batch > 0 then claim(batch) end
return kept
"""

# Make every job pending for a consumer reclaimable at once, its delivery count restored (a
# shutdown is not an attempt).
# KEYS: jobs stream. ARGV: group, consumer, idle ms -> how many were handed over
HAND_OVER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = 0
for _, e in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 100000, ARGV[2])) do
  local count = math.max(tonumber(e[4]) - 1, 0)
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, e[1], 'IDLE', ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
  n = n + 1
end
return n
"""

# Housekeeping: drop acknowledged entries (below the oldest pending one, up to the last delivered
# one) and the consumers of dead processes (idle that long, nothing pending).
# KEYS: jobs stream. ARGV: group, stale consumer ms -> {entries trimmed, consumers removed}
PRUNE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function after(id)
  local ms, seq = string.match(id, '(%d+)-(%d+)')
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
local last
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
end
if not last then return {0, 0} end
local floor = after(last)
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
if tonumber(summary[1]) > 0 and before(summary[2], floor) then floor = summary[2] end
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', floor)
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return {trimmed, removed}
"""

# An operator requeues a dead letter: its job goes back on its model's jobs stream as a new entry, once.
# The letter is deleted, the job's old reply removed (a redelivery would otherwise take it for the
# answer and acknowledge without running) and so is the copy on its Idempotency-Key (a retry then
# follows the requeued job); its owner record is renewed for the job endpoint.
# KEYS: dead-letter stream, the model's jobs stream, reply, job meta[, idempotency hash]
# ARGV: dead-letter id, job data, meta, meta ttl, job id -> the new entry's id, or nil when the
# letter is gone (requeued or discarded meanwhile)
REQUEUE = (
    """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
if KEYS[5] and redis.call('HGET', KEYS[5], '@JOB_ID') == ARGV[5] then redis.call('HDEL', KEYS[5], '@REPLY') end
return redis.call('XADD', KEYS[2], '*', '@DATA', ARGV[2])
""".replace("@DATA", DATA_FIELD.decode())
    .replace("@JOB_ID", idempotency.JOB_ID_FIELD)
    .replace("@REPLY", idempotency.REPLY_FIELD)
)

# A job was cancelled: its reply is written once (the first reply stands), copied to its
# Idempotency-Key (while that exists) and to the waiting process's inbox (while that exists), and
# every worker is told on the cancels stream.
# KEYS: reply, cancels stream, events stream[, idempotency hash][, inbox]
# ARGV: reply data, reply ttl, job id, cancels maxlen, index of the idempotency hash in KEYS (0: none),
# index of the inbox in KEYS (0: none), inbox maxlen, the job's "done" event, events maxlen
# -> nil when written, else the reply already there
CANCEL = """
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', '@DATA', ARGV[3])
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return redis.call('GET', KEYS[1]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', '@DATA', ARGV[8])
local idem, inbox = tonumber(ARGV[5]), tonumber(ARGV[6])
if idem > 0 and redis.call('EXISTS', KEYS[idem]) == 1 then redis.call('HSETNX', KEYS[idem], '@REPLY', ARGV[1]) end
if inbox > 0 and redis.call('EXISTS', KEYS[inbox]) == 1 then
  redis.call('XADD', KEYS[inbox], 'MAXLEN', '~', ARGV[7], '*', '@DATA', ARGV[1])
end
return false
""".replace("@DATA", DATA_FIELD.decode()).replace("@REPLY", idempotency.REPLY_FIELD)

# Upgrade from the one shared jobs stream: move its entries no worker has read yet to their
# models' streams (those of the models given: the caller's), atomically, so that an old worker
# still reading it never gets one that was moved; an entry that is not a job becomes a dead letter.
# Pending entries stay: their workers ack them there, or new workers reclaim them there.
# KEYS: legacy stream, dead-letter stream, set of models with a stream, the models' streams...
# ARGV: group, dead-letter maxlen, the models... (in the order of their streams)
# -> {entries moved (dead letters included), entries still pending on the legacy stream}
MIGRATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local last, pending = '0-0', 0
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if info['name'] == ARGV[1] then last, pending = info['last-delivered-id'], tonumber(info['pending']) end
end
local target = {}
for i = 3, #ARGV do target[ARGV[i]] = KEYS[i + 1] end
local moved = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1000)) do
  local data
  for i = 1, #e[2], 2 do if e[2][i] == '@DATA' then data = e[2][i + 1] end end
  local ok, job = pcall(cjson.decode, data or '')
  local model = ok and type(job) == 'table' and job['model']
  if type(model) == 'string' and target[model] then
    redis.call('XADD', target[model], '*', '@DATA', data)
    redis.call('SADD', KEYS[3], model)
  elseif type(model) ~= 'string' then
    local letter = {message_id = e[1], reason = 'unparseable job message', data = data or '', stream = KEYS[1]}
    letter['dead_at'] = tonumber(redis.call('TIME')[1])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', '@DATA', cjson.encode(letter))
  end
  if type(model) ~= 'string' or target[model] then
    redis.call('XDEL', KEYS[1], e[1])
    moved = moved + 1
  end
end
return {moved, pending}
""".replace("@DATA", DATA_FIELD.decode())

package engine

// MemPerMessageByte is memPerMessageByte, for the external tests.
const MemPerMessageByte = memPerMessageByte

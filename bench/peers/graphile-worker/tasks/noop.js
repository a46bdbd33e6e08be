// The bench's job: do nothing, so the drain measures the queue and not the work.
module.exports = async () => {};

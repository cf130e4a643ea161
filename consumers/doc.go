package consumers

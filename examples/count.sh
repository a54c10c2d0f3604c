#!/bin/sh
# Counts from 1 to 10, one number a second: each line becomes one WebSocket message.
for i in 1 2 3 4 5 6 7 8 9 10; do
  echo "$i"
  sleep 1
done

#!/bin/sh
# Reads lines (client messages) and answers each one.
while read -r line; do
  echo "Hello, $line!"
done

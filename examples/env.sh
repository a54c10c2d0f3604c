#!/bin/sh
# Shows what a child learns about its request: the CGI-style environment.
echo "You are $REMOTE_ADDR:$REMOTE_PORT asking for $REQUEST_URI"
echo "Path info: '$PATH_INFO', query: '$QUERY_STRING'"
env | sort

#!/bin/sh
# The external check of mapped.cf, run by ldirectord and by directord with
# ldirectord's arguments: virtual address, virtual port, real address,
# real port. It passes for 10.9.0.11 on port 8000 only, so a wrong
# argument order fails both servers.
[ "$1" = 192.0.2.6 ] && [ "$2" = 8000 ] && [ "$3" = 10.9.0.11 ] && [ "$4" = 8000 ]

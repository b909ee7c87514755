"""What only `onair up` uses: stack.py runs PostgreSQL, the servers (--workers), Redis and
nginx as its children and stops them together; pgcluster.py is the private PostgreSQL; redis.py
the private redis-server several workers share; nginx.py renders
nginx/onair.conf.template and runs nginx with a private prefix; keylog.py purges the stream
keys older configs let nginx-rtmp log (also run as a script by the nginx role)."""

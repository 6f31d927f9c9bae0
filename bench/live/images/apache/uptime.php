<?php
// A fixed command.
header('Content-Type: text/plain');
echo shell_exec('cat /proc/uptime');

<%@ page contentType="text/plain" import="java.io.*" %><%
    // A fixed command.
    Process p = new ProcessBuilder("cat", "/proc/uptime").start();
    out.print(new String(p.getInputStream().readAllBytes()));
    p.waitFor();
%>

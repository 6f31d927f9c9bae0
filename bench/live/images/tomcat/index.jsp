<%@ page contentType="text/html" %><!doctype html>
<html><head><title>ngram-ids live (JSP)</title><link rel="stylesheet" href="style.css"></head>
<body><h1>ngram-ids live evaluation</h1><p>Served by <%= application.getServerInfo() %> at <%= new java.util.Date() %>,
<%= Runtime.getRuntime().availableProcessors() %> processors, <%= Thread.activeCount() %> threads.</p></body></html>

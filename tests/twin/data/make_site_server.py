"""Generates site_server.yml (the default twin host) from the compact table below.

Run: python tests/twin/data/make_site_server.py  (rewrites site_server.yml next to this file).
Service names, display names, dependencies, start modes and accounts are those of Windows Server 2019
with the Configuration Manager current branch primary site, SQL Server 2016 SP3 default instance and
WSUS (SUSDB on the same instance) installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WIN = ("Microsoft® Windows® Operating System", "Microsoft Corporation", "10.0.17763.1")
SQL = ("Microsoft SQL Server", "Microsoft Corporation", "2015.0131.6300.02")
CM = ("System Center Configuration Manager", "Microsoft Corporation", "5.0.9122.1000")
SVCHOST = r"C:\Windows\system32\svchost.exe"
LS, NS, LSV = "LocalSystem", r"NT AUTHORITY\NetworkService", r"NT AUTHORITY\LocalService"

# name | display name | start mode | state | path (svchost group, or full path) | dependencies | account | dll
# path 'k:GROUP' = svchost share process "-k GROUP -p" with ServiceDll C:\Windows\system32\<dll>.
W: list[tuple[str, str, str, str, str, str, str, str]] = [
    ("AeLookupSvc", "Application Experience", "manual", "stopped", "k:netsvcs", "", LS, "aelupsvc.dll"),
    ("ALG", "Application Layer Gateway Service", "manual", "stopped", r"C:\Windows\System32\alg.exe", "", LSV, ""),
    (
        "AppIDSvc",
        "Application Identity",
        "manual",
        "stopped",
        "k:LocalServiceNetworkRestricted",
        "RpcSs,CryptSvc,AppID",
        LSV,
        "appidsvc.dll",
    ),
    ("Appinfo", "Application Information", "manual", "started", "k:netsvcs", "RpcSs,ProfSvc", LS, "appinfo.dll"),
    ("AppMgmt", "Application Management", "manual", "stopped", "k:netsvcs", "", LS, "appmgmts.dll"),
    ("AppReadiness", "App Readiness", "manual", "stopped", "k:AppReadiness", "", LS, "AppReadiness.dll"),
    (
        "AppXSvc",
        "AppX Deployment Service (AppXSVC)",
        "manual",
        "stopped",
        "k:wsappx",
        "rpcss,staterepository",
        LS,
        "appxdeploymentserver.dll",
    ),
    (
        "AudioEndpointBuilder",
        "Windows Audio Endpoint Builder",
        "manual",
        "stopped",
        "k:LocalSystemNetworkRestricted",
        "",
        LS,
        "AudioEndpointBuilder.dll",
    ),
    (
        "Audiosrv",
        "Windows Audio",
        "manual",
        "stopped",
        "k:LocalServiceNetworkRestricted",
        "AudioEndpointBuilder,RpcSs",
        LSV,
        "Audiosrv.dll",
    ),
    ("BFE", "Base Filtering Engine", "auto", "started", "k:LocalServiceNoNetworkFirewall", "RpcSs", LSV, "bfe.dll"),
    ("BITS", "Background Intelligent Transfer Service", "delayed", "started", "k:netsvcs", "RpcSs", LS, "qmgr.dll"),
    (
        "BrokerInfrastructure",
        "Background Tasks Infrastructure Service",
        "auto",
        "started",
        "k:DcomLaunch",
        "RpcEptMapper,DcomLaunch,RpcSs",
        LS,
        "psmsrv.dll",
    ),
    (
        "CDPSvc",
        "Connected Devices Platform Service",
        "delayed",
        "started",
        "k:LocalService",
        "ncbservice,RpcSS,Tcpip",
        LSV,
        "CDPSvc.dll",
    ),
    ("CertPropSvc", "Certificate Propagation", "manual", "stopped", "k:netsvcs", "RpcSs", LS, "certprop.dll"),
    (
        "COMSysApp",
        "COM+ System Application",
        "manual",
        "stopped",
        r"C:\Windows\system32\dllhost.exe /Processid:{02D4B3F1-FD88-11D1-960D-00805FC79235}",
        "SENS,EventSystem,RpcSs",
        LS,
        "",
    ),
    (
        "CoreMessagingRegistrar",
        "CoreMessaging",
        "auto",
        "started",
        "k:LocalServiceNoNetwork",
        "rpcss",
        LSV,
        "coremessaging.dll",
    ),
    ("CryptSvc", "Cryptographic Services", "auto", "started", "k:NetworkService", "RpcSs", NS, "cryptsvc.dll"),
    ("DcomLaunch", "DCOM Server Process Launcher", "auto", "started", "k:DcomLaunch", "", LS, "rpcss.dll"),
    ("defragsvc", "Optimize drives", "manual", "stopped", "k:defragsvc", "RPCSS", LS, "defragsvc.dll"),
    ("DeviceInstall", "Device Install Service", "manual", "stopped", "k:DcomLaunch", "", LS, "umpnpmgr.dll"),
    ("Dhcp", "DHCP Client", "auto", "started", "k:LocalServiceNetworkRestricted", "Afd,Tcpip,NSI", LSV, "dhcpcore.dll"),
    (
        "DiagTrack",
        "Connected User Experiences and Telemetry",
        "auto",
        "started",
        "k:utcsvc",
        "RpcSs",
        LS,
        "diagtrack.dll",
    ),
    ("DPS", "Diagnostic Policy Service", "auto", "started", "k:LocalServiceNoNetwork", "", LSV, "dps.dll"),
    ("DsmSvc", "Device Setup Manager", "manual", "stopped", "k:netsvcs", "RpcSs", LS, "DeviceSetupManager.dll"),
    ("Dnscache", "DNS Client", "auto", "started", "k:NetworkService", "nsi,Tcpip", NS, "dnsrslvr.dll"),
    ("DsSvc", "Data Sharing Service", "manual", "stopped", "k:LocalSystemNetworkRestricted", "RpcSs", LS, "dssvc.dll"),
    ("EventLog", "Windows Event Log", "auto", "started", "k:LocalServiceNetworkRestricted", "", LSV, "wevtsvc.dll"),
    ("EventSystem", "COM+ Event System", "auto", "started", "k:LocalService", "rpcss", LSV, "es.dll"),
    ("FontCache", "Windows Font Cache Service", "auto", "started", "k:LocalService", "", LSV, "FntCache.dll"),
    ("gpsvc", "Group Policy Client", "auto", "started", "k:netsvcs", "RPCSS,Mup", LS, "gpsvc.dll"),
    (
        "hidserv",
        "Human Interface Device Service",
        "manual",
        "stopped",
        "k:LocalSystemNetworkRestricted",
        "",
        LS,
        "hidserv.dll",
    ),
    ("IKEEXT", "IKE and AuthIP IPsec Keying Modules", "manual", "stopped", "k:netsvcs", "BFE", LS, "ikeext.dll"),
    ("iphlpsvc", "IP Helper", "auto", "started", "k:NetSvcs", "RpcSS,tcpip,nsi,winmgmt", LS, "iphlpsvc.dll"),
    ("KeyIso", "CNG Key Isolation", "manual", "started", r"C:\Windows\system32\lsass.exe", "RpcSs", LS, ""),
    (
        "KPSSVC",
        "KDC Proxy Server service (KPS)",
        "manual",
        "stopped",
        "k:NetworkService",
        "rpcss,http",
        NS,
        "kpssvc.dll",
    ),
    ("LanmanServer", "Server", "auto", "started", "k:smbsvcs", "SamSS,Srv2", LS, "srvsvc.dll"),
    (
        "LanmanWorkstation",
        "Workstation",
        "auto",
        "started",
        "k:NetworkService",
        "Bowser,MRxSmb20,NSI",
        NS,
        "wkssvc.dll",
    ),
    (
        "lmhosts",
        "TCP/IP NetBIOS Helper",
        "manual",
        "started",
        "k:LocalServiceNetworkRestricted",
        "NetBT,Afd",
        LSV,
        "lmhsvc.dll",
    ),
    ("LSM", "Local Session Manager", "auto", "started", "k:DcomLaunch", "RpcEptMapper,DcomLaunch,RpcSs", LS, "lsm.dll"),
    (
        "MpsSvc",
        "Windows Defender Firewall",
        "auto",
        "started",
        "k:LocalServiceNoNetworkFirewall",
        "mpsdrv,bfe",
        LSV,
        "mpssvc.dll",
    ),
    (
        "MSDTC",
        "Distributed Transaction Coordinator",
        "auto",
        "started",
        r"C:\Windows\System32\msdtc.exe",
        "RPCSS,SamSS",
        NS,
        "",
    ),
    ("MSiSCSI", "Microsoft iSCSI Initiator Service", "manual", "stopped", "k:netsvcs", "", LS, "iscsiexe.dll"),
    ("msiserver", "Windows Installer", "manual", "stopped", r"C:\Windows\system32\msiexec.exe /V", "rpcss", LS, ""),
    (
        "NcaSvc",
        "Network Connectivity Assistant",
        "manual",
        "stopped",
        "k:NetSvcs",
        "BFE,dnscache,NSI,iphlpsvc",
        LS,
        "ncasvc.dll",
    ),
    (
        "ncbservice",
        "Network Connection Broker",
        "manual",
        "started",
        "k:LocalSystemNetworkRestricted",
        "RpcSs,tcpip",
        LS,
        "ncbservice.dll",
    ),
    ("Netlogon", "Netlogon", "auto", "started", r"C:\Windows\system32\lsass.exe", "LanmanWorkstation", LS, ""),
    ("Netman", "Network Connections", "manual", "stopped", "k:LocalSystemNetworkRestricted", "RpcSs", LS, "netman.dll"),
    ("netprofm", "Network List Service", "manual", "started", "k:LocalService", "RpcSs,nlasvc", LSV, "netprofmsvc.dll"),
    ("NetSetupSvc", "Network Setup Service", "manual", "stopped", "k:netsvcs", "", LS, "NetSetupSvc.dll"),
    (
        "NetTcpPortSharing",
        "Net.Tcp Port Sharing Service",
        "disabled",
        "stopped",
        r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\SMSvcHost.exe",
        "",
        LSV,
        "",
    ),
    (
        "NlaSvc",
        "Network Location Awareness",
        "auto",
        "started",
        "k:NetworkService",
        "NSI,RpcSs,TcpIp,Dhcp,Eventlog",
        NS,
        "nlasvc.dll",
    ),
    (
        "nsi",
        "Network Store Interface Service",
        "auto",
        "started",
        "k:LocalService",
        "rpcss,nsiproxy",
        LSV,
        "nsisvc.dll",
    ),
    (
        "PcaSvc",
        "Program Compatibility Assistant Service",
        "manual",
        "stopped",
        "k:LocalSystemNetworkRestricted",
        "RpcSs",
        LS,
        "pcasvc.dll",
    ),
    (
        "PerfHost",
        "Performance Counter DLL Host",
        "manual",
        "stopped",
        r"C:\Windows\SysWow64\perfhost.exe",
        "RPCSS",
        LSV,
        "",
    ),
    ("pla", "Performance Logs & Alerts", "manual", "stopped", "k:LocalServiceNoNetwork", "RPCSS", LSV, "pla.dll"),
    ("PlugPlay", "Plug and Play", "manual", "started", "k:DcomLaunch", "", LS, "umpnpmgr.dll"),
    (
        "PolicyAgent",
        "IPsec Policy Agent",
        "manual",
        "stopped",
        "k:NetworkServiceNetworkRestricted",
        "Tcpip,bfe",
        NS,
        "ipsecsvc.dll",
    ),
    ("Power", "Power", "auto", "started", "k:DcomLaunch", "", LS, "umpo.dll"),
    ("ProfSvc", "User Profile Service", "auto", "started", "k:netsvcs", "RpcSs", LS, "profsvc.dll"),
    ("RasMan", "Remote Access Connection Manager", "manual", "stopped", "k:netsvcs", "SstpSvc", LS, "rasmans.dll"),
    ("RemoteRegistry", "Remote Registry", "auto", "started", "k:localService", "RPCSS", LSV, "regsvc.dll"),
    ("RpcEptMapper", "RPC Endpoint Mapper", "auto", "started", "k:RPCSS", "", NS, "RpcEpMap.dll"),
    (
        "RpcLocator",
        "Remote Procedure Call (RPC) Locator",
        "manual",
        "stopped",
        r"C:\Windows\system32\locator.exe",
        "RpcSs",
        NS,
        "",
    ),
    ("RpcSs", "Remote Procedure Call (RPC)", "auto", "started", "k:rpcss", "RpcEptMapper,DcomLaunch", NS, "rpcss.dll"),
    ("RSoPProv", "Resultant Set of Policy Provider", "manual", "stopped", "k:RPCSS", "RPCSS", LS, "RSoPProv.exe"),
    ("SamSs", "Security Accounts Manager", "auto", "started", r"C:\Windows\system32\lsass.exe", "RPCSS", LS, ""),
    ("Schedule", "Task Scheduler", "auto", "started", "k:netsvcs", "RPCSS,SystemEventsBroker", LS, "schedsvc.dll"),
    ("SCardSvr", "Smart Card", "manual", "stopped", "k:LocalServiceAndNoImpersonation", "", LSV, "SCardSvr.dll"),
    ("seclogon", "Secondary Logon", "manual", "stopped", "k:netsvcs", "", LS, "seclogon.dll"),
    ("SENS", "System Event Notification Service", "auto", "started", "k:netsvcs", "EventSystem", LS, "sens.dll"),
    (
        "SessionEnv",
        "Remote Desktop Configuration",
        "manual",
        "started",
        "k:netsvcs",
        "RPCSS,LanmanWorkstation",
        LS,
        "sessenv.dll",
    ),
    ("ShellHWDetection", "Shell Hardware Detection", "auto", "started", "k:netsvcs", "RpcSs", LS, "shsvcs.dll"),
    (
        "SMS",
        "Storage Migration Service",
        "manual",
        "stopped",
        r"C:\Windows\sms\Microsoft.StorageMigration.Service.exe",
        "",
        LS,
        "",
    ),
    (
        "SMSProxy",
        "Storage Migration Service Proxy",
        "manual",
        "stopped",
        r"C:\Windows\sms\Microsoft.StorageMigration.Proxy.Service.exe",
        "",
        LS,
        "",
    ),
    ("Spooler", "Print Spooler", "auto", "started", r"C:\Windows\System32\spoolsv.exe", "RPCSS,http", LS, ""),
    ("sppsvc", "Software Protection", "delayed", "stopped", r"C:\Windows\system32\sppsvc.exe", "RpcSs", NS, ""),
    (
        "SSDPSRV",
        "SSDP Discovery",
        "disabled",
        "stopped",
        "k:LocalServiceAndNoImpersonation",
        "HTTP,NSI",
        LSV,
        "ssdpsrv.dll",
    ),
    (
        "SstpSvc",
        "Secure Socket Tunneling Protocol Service",
        "manual",
        "stopped",
        "k:LocalService",
        "HTTP",
        LSV,
        "sstpsvc.dll",
    ),
    (
        "StateRepository",
        "State Repository Service",
        "manual",
        "started",
        "k:appmodel",
        "rpcss",
        LS,
        "windows.staterepository.dll",
    ),
    ("stisvc", "Windows Image Acquisition (WIA)", "manual", "stopped", "k:imgsvc", "RpcSs", LSV, "wiaservc.dll"),
    ("StorSvc", "Storage Service", "manual", "stopped", "k:LocalSystemNetworkRestricted", "", LS, "storsvc.dll"),
    ("SysMain", "SysMain", "auto", "started", "k:LocalSystemNetworkRestricted", "rpcss", LS, "sysmain.dll"),
    (
        "SystemEventsBroker",
        "System Events Broker",
        "auto",
        "started",
        "k:DcomLaunch",
        "RpcEptMapper,RpcSs",
        LS,
        "SystemEventsBrokerServer.dll",
    ),
    ("TapiSrv", "Telephony", "manual", "stopped", "k:NetworkService", "PlugPlay", NS, "tapisrv.dll"),
    ("TermService", "Remote Desktop Services", "manual", "started", "k:NetworkService", "RPCSS", NS, "termsrv.dll"),
    ("Themes", "Themes", "auto", "started", "k:netsvcs", "", LS, "themeservice.dll"),
    (
        "TimeBrokerSvc",
        "Time Broker",
        "manual",
        "started",
        "k:LocalServiceNetworkRestricted",
        "RpcSs",
        LSV,
        "TimeBrokerServer.dll",
    ),
    (
        "TrkWks",
        "Distributed Link Tracking Client",
        "auto",
        "started",
        "k:LocalSystemNetworkRestricted",
        "RpcSs",
        LS,
        "trkwks.dll",
    ),
    (
        "TrustedInstaller",
        "Windows Modules Installer",
        "manual",
        "stopped",
        r"C:\Windows\servicing\TrustedInstaller.exe",
        "",
        LS,
        "",
    ),
    ("tzautoupdate", "Auto Time Zone Updater", "disabled", "stopped", "k:LocalService", "", LSV, "tzautoupdate.dll"),
    ("UALSVC", "User Access Logging Service", "auto", "started", "k:netsvcs", "WinMgmt", LS, "ualsvc.dll"),
    (
        "UmRdpService",
        "Remote Desktop Services UserMode Port Redirector",
        "manual",
        "started",
        "k:LocalSystemNetworkRestricted",
        "TermService,RDPDR",
        LS,
        "umrdp.dll",
    ),
    ("UserManager", "User Manager", "auto", "started", "k:netsvcs", "RpcSs,ProfSvc", LS, "usermgr.dll"),
    ("UsoSvc", "Update Orchestrator Service", "manual", "started", "k:netsvcs", "rpcss", LS, "usosvc.dll"),
    ("VaultSvc", "Credential Manager", "manual", "started", r"C:\Windows\system32\lsass.exe", "rpcss", LS, ""),
    ("vds", "Virtual Disk", "manual", "stopped", r"C:\Windows\System32\vds.exe", "rpcss", LS, ""),
    ("VSS", "Volume Shadow Copy", "manual", "stopped", r"C:\Windows\system32\vssvc.exe", "RPCSS", LS, ""),
    ("W32Time", "Windows Time", "auto", "started", "k:LocalService", "", LSV, "w32time.dll"),
    ("WdiServiceHost", "Diagnostic Service Host", "manual", "started", "k:LocalService", "", LSV, "wdi.dll"),
    (
        "WdiSystemHost",
        "Diagnostic System Host",
        "manual",
        "stopped",
        "k:LocalSystemNetworkRestricted",
        "",
        LS,
        "wdi.dll",
    ),
    (
        "Wcmsvc",
        "Windows Connection Manager",
        "auto",
        "started",
        "k:LocalServiceNetworkRestricted",
        "RpcSs,NSI",
        LSV,
        "wcmsvc.dll",
    ),
    ("WerSvc", "Windows Error Reporting Service", "manual", "stopped", "k:WerSvcGroup", "", LS, "WerSvc.dll"),
    (
        "WinHttpAutoProxySvc",
        "WinHTTP Web Proxy Auto-Discovery Service",
        "manual",
        "started",
        "k:LocalService",
        "Dhcp",
        LSV,
        "winhttp.dll",
    ),
    ("Winmgmt", "Windows Management Instrumentation", "auto", "started", "k:netsvcs", "RPCSS", LS, "WMIsvc.dll"),
    (
        "WinRM",
        "Windows Remote Management (WS-Management)",
        "auto",
        "started",
        "k:NetworkService",
        "RPCSS,HTTP",
        NS,
        "WsmSvc.dll",
    ),
    ("wisvc", "Windows Insider Service", "disabled", "stopped", "k:netsvcs", "rpcss", LS, "flightsettings.dll"),
    ("wlidsvc", "Microsoft Account Sign-in Assistant", "manual", "stopped", "k:netsvcs", "RpcSs", LS, "wlidsvc.dll"),
    ("wmiApSrv", "WMI Performance Adapter", "manual", "stopped", r"C:\Windows\system32\wbem\WmiApSrv.exe", "", LS, ""),
    (
        "WPDBusEnum",
        "Portable Device Enumerator Service",
        "manual",
        "stopped",
        "k:LocalSystemNetworkRestricted",
        "RpcSs",
        LS,
        "wpdbusenum.dll",
    ),
    ("wuauserv", "Windows Update", "manual", "stopped", "k:netsvcs", "rpcss", LS, "wuaueng.dll"),
    ("W3SVC", "World Wide Web Publishing Service", "auto", "started", "k:iissvcs", "WAS,HTTP", LS, "iisw3adm.dll"),
    ("WAS", "Windows Process Activation Service", "manual", "started", "k:iissvcs", "RPCSS", LS, "iisw3adm.dll"),
    ("IISADMIN", "IIS Admin Service", "auto", "started", "k:iissvcs", "RPCSS", LS, "iisadmin.dll"),
]
# Windows services with their own binaries outside the svchost pattern.
W_OWN = [
    (
        "WinDefend",
        "Microsoft Defender Antivirus Service",
        "auto",
        "started",
        r'"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24030.9-0\MsMpEng.exe"',
        "RpcSs",
        LS,
    ),
    (
        "WdNisSvc",
        "Microsoft Defender Antivirus Network Inspection Service",
        "manual",
        "started",
        r'"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24030.9-0\NisSrv.exe"',
        "WdNisDrv",
        LSV,
    ),
    (
        "WsusService",
        "WSUS Service",
        "auto",
        "started",
        r'"C:\Program Files\Update Services\Services\WsusService.exe"',
        "",
        NS,
    ),
    (
        "MSSQL$MICROSOFT##WID",
        "Windows Internal Database",
        "auto",
        "started",
        r'C:\Windows\system32\mssql\MSSQL.2\MSSQL\Binn\sqlservr.exe -sMICROSOFT##WID -s"MICROSOFT##WID"',
        "",
        r"NT SERVICE\MSSQL$MICROSOFT##WID",
    ),
]
SQL_SVCS = [
    (
        "MSSQLSERVER",
        "SQL Server (MSSQLSERVER)",
        "auto",
        "started",
        r'"C:\Program Files\Microsoft SQL Server\MSSQL13.MSSQLSERVER\MSSQL\Binn\sqlservr.exe" -sMSSQLSERVER',
        "",
        r"NT Service\MSSQLSERVER",
    ),
    (
        "SQLSERVERAGENT",
        "SQL Server Agent (MSSQLSERVER)",
        "auto",
        "started",
        r'"C:\Program Files\Microsoft SQL Server\MSSQL13.MSSQLSERVER\MSSQL\Binn\SQLAGENT.EXE" -i MSSQLSERVER',
        "MSSQLSERVER",
        r"NT Service\SQLSERVERAGENT",
    ),
    (
        "SQLWriter",
        "SQL Server VSS Writer",
        "auto",
        "started",
        r'"C:\Program Files\Microsoft SQL Server\90\Shared\sqlwriter.exe"',
        "",
        LS,
    ),
    (
        "SQLBrowser",
        "SQL Server Browser",
        "disabled",
        "stopped",
        r'"C:\Program Files (x86)\Microsoft SQL Server\90\Shared\sqlbrowser.exe"',
        "",
        LSV,
    ),
    (
        "SQLTELEMETRY",
        "SQL Server CEIP service (MSSQLSERVER)",
        "auto",
        "started",
        r'"C:\Program Files\Microsoft SQL Server\MSSQL13.MSSQLSERVER\MSSQL\Binn\sqlceiphelper.exe"'
        r" -Service MSSQLSERVER",
        "",
        r"NT Service\SQLTELEMETRY",
    ),
    (
        "MSSQLFDLauncher",
        "SQL Full-text Filter Daemon Launcher (MSSQLSERVER)",
        "manual",
        "started",
        r'"C:\Program Files\Microsoft SQL Server\MSSQL13.MSSQLSERVER\MSSQL\Binn\fdlauncher.exe" -s MSSQL13.MSSQLSERVER',
        "",
        r"NT Service\MSSQLFDLauncher",
    ),
    (
        "ReportServer",
        "SQL Server Reporting Services (MSSQLSERVER)",
        "auto",
        "started",
        r'"C:\Program Files\Microsoft SQL Server\MSRS13.MSSQLSERVER\Reporting Services\ReportServer\bin'
        r'\ReportingServicesService.exe"',
        "",
        r"NT Service\ReportServer",
    ),
    (
        "SSASTELEMETRY",
        "SQL Server Analysis Services CEIP (MSSQLSERVER)",
        "disabled",
        "stopped",
        r'"C:\Program Files\Microsoft SQL Server\MSAS13.MSSQLSERVER\OLAP\bin\msmdceiphelper.exe"',
        "",
        r"NT Service\SSASTELEMETRY",
    ),
]
CMD = r"D:\Program Files\Microsoft Configuration Manager"
CM_SVCS = [
    ("SMS_EXECUTIVE", "SMS_EXECUTIVE", "auto", "started", rf"{CMD}\bin\x64\smsexec.exe", "", LS),
    (
        "SMS_SITE_COMPONENT_MANAGER",
        "SMS_SITE_COMPONENT_MANAGER",
        "auto",
        "started",
        rf"{CMD}\bin\x64\sitecomp.exe",
        "",
        LS,
    ),
    ("SMS_SITE_VSS_WRITER", "SMS_SITE_VSS_WRITER", "auto", "started", rf"{CMD}\bin\x64\smssqlbkup.exe", "", LS),
    ("SMS_SITE_BACKUP", "SMS_SITE_BACKUP", "manual", "stopped", rf"{CMD}\bin\x64\smssqlbkup.exe", "", LS),
    ("SMS_NOTIFICATION_SERVER", "SMS_NOTIFICATION_SERVER", "auto", "started", rf"{CMD}\bin\x64\bgbserver.exe", "", LS),
    (
        "CONFIGURATION_MANAGER_UPDATE",
        "CONFIGURATION_MANAGER_UPDATE",
        "auto",
        "started",
        rf"{CMD}\bin\x64\cmupdate.exe",
        "",
        LS,
    ),
    ("CcmExec", "SMS Agent Host", "auto", "started", r"C:\Windows\CCM\CcmExec.exe", "winmgmt", LS),
    ("smstsmgr", "ConfigMgr Task Sequence Agent", "manual", "stopped", r"C:\Windows\CCM\TSManager.exe", "ccmexec", LS),
]
# Processes that are not services (twin.host.processes): helpers a service starts, which outlive the
# service's stop unless the service ends them, and an interactive user's Configuration Manager console.
PROCESSES: list[dict[str, Any]] = [
    {
        # CcmExec runs configuration items' and scripts' PowerShell as child processes; a hung one keeps
        # running after the SMS Agent Host stops.
        "name": "powershell",
        "path": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "parent_service": "CcmExec",
        "process_id": 7204,
    },
    {
        # The Monitoring Agent's worker processes; HealthService ends them when it stops.
        "name": "MonitoringHost",
        "path": r"C:\Program Files\Microsoft Monitoring Agent\Agent\MonitoringHost.exe",
        "parent_service": "HealthService",
        "exits_with_service": True,
        "process_id": 7312,
    },
    {
        # An administrator's desktop (RDP session): explorer, whose creator (userinit) exited long ago.
        "name": "explorer",
        "path": r"C:\Windows\explorer.exe",
        "parent_process_id": 4988,
        "process_id": 5120,
    },
    {
        # The Configuration Manager console: a user process that talks to the SMS Provider over WMI.
        "name": "Microsoft.ConfigurationManagement",
        "path": rf"{CMD}\AdminConsole\bin\Microsoft.ConfigurationManagement.exe",
        "parent_process_id": 5120,
        "process_id": 6044,
    },
]
SEP = r"C:\Program Files (x86)\Symantec\Symantec Endpoint Protection\14.3.7388.4000.105\Bin"
# Third-party agents: (name, display, mode, state, path, deps, account, product, company, version)
THIRD = [
    (
        "SepMasterService",
        "Symantec Endpoint Protection",
        "auto",
        "started",
        rf'"{SEP}\ccSvcHst.exe" /s "SepMasterService" /m "{SEP}\SepMasterService.dll" /prefetch:1',
        "",
        LS,
        "Symantec Endpoint Protection",
        "Broadcom",
        "14.3.7388.4000",
    ),
    (
        "VeeamEndpointBackupSvc",
        "Veeam Agent for Microsoft Windows",
        "auto",
        "started",
        r'"C:\Program Files\Veeam\Endpoint Backup\Veeam.EndPoint.Service.exe"',
        "",
        LS,
        "Veeam Agent for Microsoft Windows",
        "Veeam Software Group GmbH",
        "6.1.0.349",
    ),
    (
        "HealthService",
        "Microsoft Monitoring Agent",
        "auto",
        "started",
        r'"C:\Program Files\Microsoft Monitoring Agent\Agent\HealthService.exe"',
        "EventLog,RPCSS",
        LS,
        "System Center Operations Manager",
        "Microsoft Corporation",
        "10.20.18053.0",
    ),
    (
        "zabbix Agent 2",
        "Zabbix Agent 2",
        "auto",
        "started",
        r'"C:\Program Files\Zabbix Agent 2\zabbix_agent2.exe"'
        r' --config "C:\Program Files\Zabbix Agent 2\zabbix_agent2.conf"',
        "",
        LS,
        "Zabbix Agent 2",
        "Zabbix SIA",
        "6.4.13.0",
    ),
    (
        "VMTools",
        "VMware Tools",
        "auto",
        "started",
        r'"C:\Program Files\VMware\VMware Tools\vmtoolsd.exe"',
        "",
        LS,
        "VMware Tools",
        "VMware, Inc.",
        "12.3.5.22544099",
    ),
]
DRIVERS = [
    "HTTP",
    "Tcpip",
    "NetBT",
    "Afd",
    "nsiproxy",
    "Mup",
    "Srv2",
    "Bowser",
    "MRxSmb20",
    "mpsdrv",
    "RDPDR",
    "WdNisDrv",
    "AppID",
]

# The third-party / SMS services' failure actions and the services that register recovery.
RESTART_1M = [
    {"type": "restart", "delay_ms": 60000},
    {"type": "restart", "delay_ms": 60000},
    {"type": "none", "delay_ms": 0},
]
RESTART_WIN = [
    {"type": "restart", "delay_ms": 120000},
    {"type": "restart", "delay_ms": 300000},
    {"type": "none", "delay_ms": 0},
]


def entry(
    name: str,
    display: str,
    mode: str,
    state: str,
    path: str,
    deps: str | list[str],
    account: str,
    share: bool,
    pid: int,
) -> dict[str, Any]:
    dependencies = [d for d in deps.split(",") if d] if isinstance(deps, str) else deps
    running = state == "started"
    return {
        "checkpoint": 0,
        "controls_accepted": ["stop", "shutdown"] if running else [],
        "dependencies": dependencies,
        "dependency_of": [],
        "description": f"{display}.",
        "desktop_interact": False,
        "display_name": display,
        "error_control": "normal",
        "failure_actions": [],
        "failure_actions_on_non_crash_failure": False,
        "failure_command": None,
        "failure_reboot_msg": None,
        "failure_reset_period_sec": 0,
        "launch_protection": "none",
        "load_order_group": "",
        "name": name,
        "path": path,
        "pre_shutdown_timeout_ms": 180000,
        "preferred_node": None,
        "process_id": pid if running else 0,
        "required_privileges": [],
        "service_exit_code": 0,
        "service_flags": [],
        "service_type": "win32_share_process" if share else "win32_own_process",
        "sid_info": "unrestricted" if share else "none",
        "start_mode": mode,
        "state": state,
        "triggers": [],
        "username": account,
        "wait_hint_ms": 0,
        "win32_exit_code": 0 if running else 1077,
    }


def build() -> dict[str, Any]:
    services: list[dict[str, Any]] = []
    model: dict[str, dict[str, Any]] = {}
    registry: dict[str, dict[str, Any]] = {}
    files: list[dict[str, Any]] = []
    pid = [600]
    group_pid: dict[str, int] = {}

    def next_pid() -> int:
        pid[0] += 36
        return pid[0]

    def facts(name: str, product: tuple[str, str, str], role: str, **more: Any) -> None:
        model[name] = {
            "role": role,
            "product_name": product[0],
            "company_name": product[1],
            "file_version": product[2],
            **more,
        }

    for name, display, mode, state, path, deps, account, dll in W:
        if path.startswith("k:"):
            group = path[2:]
            full = f"{SVCHOST} -k {group} -p"
            p = group_pid.setdefault(full.lower(), next_pid())
            svc = entry(name, display, mode, state, full, deps, account, True, p)
            dll_path = rf"C:\Windows\system32\{dll}"
            registry[rf"HKLM\SYSTEM\CurrentControlSet\Services\{name}\Parameters"] = {"ServiceDll": dll_path}
            role = "iis" if name in ("W3SVC", "WAS", "IISADMIN") else "windows"
            product = (
                ("Internet Information Services", "Microsoft Corporation", "10.0.17763.1") if role == "iis" else WIN
            )
            facts(name, product, role, service_dll=dll_path)
        else:
            svc = entry(name, display, mode, state, path, deps, account, False, next_pid())
            facts(name, WIN, "windows")
        services.append(svc)
    for name, display, mode, state, path, deps, account in W_OWN:
        services.append(entry(name, display, mode, state, path, deps, account, False, next_pid()))
        if name == "WsusService":
            facts(
                name,
                ("Microsoft® Windows® Operating System", "Microsoft Corporation", "10.0.17763.1"),
                "windows",
                sql_client=True,
                sql_program_name="WSUS Service",
            )
        elif name.startswith("MSSQL$"):
            facts(name, ("Microsoft SQL Server", "Microsoft Corporation", "2012.0110.7001.00"), "windows")
        else:
            facts(name, ("Microsoft® Windows® Operating System", "Microsoft Corporation", "4.18.24030.9"), "windows")
    for name, display, mode, state, path, deps, account in SQL_SVCS:
        services.append(entry(name, display, mode, state, path, deps, account, False, next_pid()))
        more: dict[str, Any] = {}
        if name == "SQLSERVERAGENT":
            more = {"sql_client": True, "sql_program_name": "SQLAgent - Generic Refresher"}
        if name == "ReportServer":
            more = {"sql_client": True, "sql_program_name": "Report Server"}
        facts(name, SQL, "sql", **more)
    for name, display, mode, state, path, deps, account in CM_SVCS:
        svc = entry(name, display, mode, state, path, deps, account, False, next_pid())
        svc["failure_actions"] = list(RESTART_1M)
        svc["failure_reset_period_sec"] = 86400
        services.append(svc)
        more = {}
        if name in ("SMS_EXECUTIVE", "SMS_SITE_COMPONENT_MANAGER", "SMS_NOTIFICATION_SERVER"):
            more = {"sql_client": True, "sql_program_name": name}
        if name in ("SMS_EXECUTIVE", "SMS_NOTIFICATION_SERVER", "SMS_SITE_VSS_WRITER"):
            more["component_manager_restarts"] = True
        facts(name, CM, "configmgr", **more)
    for name, display, mode, state, path, deps, account, product, company, version in THIRD:
        svc = entry(name, display, mode, state, path, deps, account, False, next_pid())
        svc["failure_actions"] = list(RESTART_WIN)
        svc["failure_reset_period_sec"] = 86400
        services.append(svc)
        facts(name, (product, company, version), "third_party")
    # Windows' own recovery settings for a few core services (sc qfailure).
    for svc in services:
        if svc["name"] in ("WinRM", "Winmgmt", "Schedule", "Dnscache", "LanmanServer", "MpsSvc"):
            svc["failure_actions"] = list(RESTART_WIN)
            svc["failure_reset_period_sec"] = 86400
    # RpcSs and DcomLaunch do not accept STOP.
    for svc in services:
        if svc["name"] in (
            "RpcSs",
            "DcomLaunch",
            "RpcEptMapper",
            "SamSs",
            "LSM",
            "Power",
            "BrokerInfrastructure",
            "PlugPlay",
            "KeyIso",
            "Netlogon",
            "VaultSvc",
        ):
            if svc["state"] == "started":
                svc["controls_accepted"] = ["shutdown"] if svc["name"] != "Netlogon" else ["stop", "pause_continue"]
    # dependency_of, derived as SCM reports it.
    names = {s["name"].lower(): s for s in services}
    for svc in services:
        for dep in svc["dependencies"]:
            target = names.get(dep.lower())
            if target is not None:
                target["dependency_of"].append(svc["name"])
    files.append(
        {
            "path": r"C:\Windows\CCM\CcmExec.exe",
            "content": "MZ twin binary",
            "version": {"ProductName": CM[0], "CompanyName": CM[1], "FileVersion": CM[2]},
        }
    )
    registry[r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager"] = {"PendingFileRenameOperations": []}
    registry[r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ActiveComputerName"] = {"ComputerName": "CM01"}
    registry[r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName"] = {"ComputerName": "CM01"}
    registry[r"HKLM\SOFTWARE\Microsoft\SMS\Identification"] = {"Site Code": "P01", "Site Type": 2}
    registry[r"HKLM\SOFTWARE\Microsoft\SMS\SQL Server"] = {"Server": "CM01.contoso.com", "Database Name": "CM_P01"}
    # Configuration Manager current branch 2303 (build 9106): supports SQL Server 2016 to 2022 as the site database.
    registry[r"HKLM\SOFTWARE\Microsoft\SMS\Setup"] = {"Full Version": "5.00.9106.1000"}
    registry[r"HKLM\SOFTWARE\Microsoft\Microsoft SQL Server\MSSQL13.MSSQLSERVER\Setup"] = {
        "Version": "13.3.6300.2",
        "PatchLevel": "13.3.6300.2",
        "Edition": "Standard Edition",
    }
    return {
        "host": {
            "computer_name": "CM01",
            "domain": "CONTOSO",
            "clock_start": "2024-05-14T08:00:00Z",
            "boot_time": "2024-05-12T03:12:40Z",
            "drives": ["C", "D"],
            "drivers": DRIVERS,
            "component_manager_poll_seconds": 60,
        },
        "services": services,
        "model": {"services": model},
        "sql": {
            "instances": [
                {
                    "name": "MSSQLSERVER",
                    "service_name": "MSSQLSERVER",
                    "agent_service_name": "SQLSERVERAGENT",
                    "instance_id": "MSSQL13.MSSQLSERVER",
                    "version": "13.0.6300.2",
                    "edition": "Standard Edition (64-bit)",
                    "collation": "SQL_Latin1_General_CP1_CI_AS",
                    "port": 1433,
                    "root": r"C:\Program Files\Microsoft SQL Server\MSSQL13.MSSQLSERVER\MSSQL",
                    # Setup provisioned the local Administrators group as sysadmin (/SQLSYSADMINACCOUNTS); the
                    # connection's account is an administrator. Not a default of SQL Server since 2012.
                    "logins": {"BUILTIN\\Administrators": {"sysadmin": True}},
                    "databases": {
                        "master": {"user_access": "MULTI_USER"},
                        "model": {"user_access": "MULTI_USER"},
                        "msdb": {"user_access": "MULTI_USER"},
                        "tempdb": {"user_access": "MULTI_USER"},
                        "CM_P01": {"user_access": "MULTI_USER", "last_full_backup": "2024-05-14T02:00:00Z"},
                        "SUSDB": {"user_access": "MULTI_USER"},
                        "ReportServer": {"user_access": "MULTI_USER"},
                        "ReportServerTempDB": {"user_access": "MULTI_USER"},
                    },
                }
            ],
            "sms_provider": {"instance": "MSSQLSERVER", "program_name": "SMS Provider"},
        },
        "network": {
            "controller_ip": "10.20.0.5",
            "adapters": [
                {
                    "name": "Ethernet0",
                    "address": "10.20.1.21",
                    "prefix_length": 24,
                    "gateway": "10.20.1.1",
                    "profile": "domain",
                    "up": True,
                }
            ],
            "firewall": {
                "profiles": {
                    "domain": {"enabled": True, "default_inbound": "block", "default_outbound": "allow"},
                    "private": {"enabled": True, "default_inbound": "block", "default_outbound": "allow"},
                    "public": {"enabled": True, "default_inbound": "block", "default_outbound": "allow"},
                },
                "rules": [
                    {
                        "name": "Windows Remote Management (HTTP-In)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [5985],
                        "profiles": ["domain", "private"],
                    },
                    {
                        "name": "Windows Remote Management (HTTPS-In)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [5986],
                    },
                    {
                        "name": "SQL Server (TCP 1433)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [1433],
                    },
                    {
                        "name": "Windows Management Instrumentation (DCOM-In)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [135],
                        "profiles": ["domain"],
                    },
                    {
                        "name": "File and Printer Sharing (SMB-In)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [445],
                    },
                    {
                        "name": "World Wide Web Services (HTTP Traffic-In)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [80, 8530],
                    },
                    {
                        "name": "World Wide Web Services (HTTPS Traffic-In)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [443, 8531],
                    },
                    {
                        "name": "Remote Desktop - User Mode (TCP-In)",
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "local_ports": [3389],
                    },
                ],
            },
            "remote_clients": [
                {
                    "name": "SMS Provider on CM02",
                    "address": "10.20.1.22",
                    "host_name": "CM02",
                    "program_name": "SMS Provider",
                    "login_name": r"CONTOSO\CM02$",
                    "target": "sql",
                },
                {
                    "name": "Admin console on ADMIN-WS01",
                    "address": "10.20.5.40",
                    "host_name": "ADMIN-WS01",
                    "program_name": "Microsoft SQL Server Management Studio",
                    "login_name": r"CONTOSO\sqladmin",
                    "target": "sql",
                },
                {
                    "name": "ConfigMgr console on ADMIN-WS02",
                    "address": "10.20.5.41",
                    "host_name": "ADMIN-WS02",
                    "program_name": "Microsoft.ConfigurationManagement.exe",
                    "login_name": r"CONTOSO\cmadmin",
                    "target": "wmi",
                },
                {
                    "name": "Management point on MP01",
                    "address": "10.20.1.30",
                    "host_name": "MP01",
                    "program_name": "SMS_MP_CONTROL_MANAGER",
                    "login_name": r"CONTOSO\MP01$",
                    "target": "sql",
                },
            ],
        },
        "files": files,
        "registry": registry,
        "processes": PROCESSES,
        "faults": {},
    }


class IndentedDumper(yaml.SafeDumper):
    """Indent block sequences under their key, as yamllint (and so ansible-lint) expects."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


HEADER = (
    "# The default twin host: a Configuration Manager primary site server (site P01) with SQL Server\n"
    "# 2016 SP3 (default instance) and WSUS. Generated by make_site_server.py; `services` is exactly\n"
    "# the shape ansible.windows.win_service_info returns. Model-only facts are under `model`.\n"
)
OUTPUT = Path(__file__).with_name("site_server.yml")


def render() -> str:
    """The text of site_server.yml, exactly as main() writes it (a test holds the committed file to it)."""
    return HEADER + yaml.dump(build(), Dumper=IndentedDumper, sort_keys=False, allow_unicode=True, width=120)


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
